"""Controllers in the loop: they see measured values and emit setpoints."""
