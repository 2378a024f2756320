"""Physics models of the twin: plain, vectorised classes with no mosaik import."""
