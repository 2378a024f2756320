from adapters.ingest.stats import IngestCounts, ingest_problems, summary_line


def _stats(**changes):
    stats = IngestCounts(messages=10, values=10, accepted=10, submitted=10).as_dict()
    stats["store"] = {"points_submitted": 10, "points_written": 10}
    stats.update(changes)
    return stats


def test_a_clean_ingest_passes():
    assert ingest_problems(_stats(), 0.01) == []
    assert summary_line(_stats()).startswith("ingest: 10 messages, 10 values, 10 accepted")


def test_values_not_handed_to_the_writer_fail_the_check():
    (problem,) = ingest_problems(_stats(submitted=7), 0.01)
    assert "3 accepted values were never handed to the writer" in problem


def test_points_the_writer_lost_or_left_in_the_spool_fail_the_check():
    store = {"points_dropped": 2, "spooled_points_left": 5}
    problems = ingest_problems(_stats(store=store, spool_dir="/x/ingest-spool"), 0.01)
    assert any("2 points dropped" in p for p in problems)
    assert any("5 raw points left in the spool /x/ingest-spool" in p for p in problems)


def test_no_counters_is_a_failure():
    assert "left no counters" in ingest_problems({}, 0.01)[0]


def test_unknown_keys_are_kept_for_the_first_hundred_only():
    counts = IngestCounts()
    for i in range(150):
        counts.note_unknown(f"k/{i}")
    counts.note_unknown("k/0")
    out = counts.as_dict()
    assert out["unknown"] == 151 and out["unknown_topics"] == 100
    assert next(iter(out["unknown_top"])) == "k/0"


def test_a_run_that_received_nothing_fails_the_check():
    (problem,) = ingest_problems(_stats(messages=0, values=0, accepted=0, submitted=0), 0.01)
    assert "no message arrived" in problem


def test_lost_messages_and_values_lost_between_store_and_writer_fail_the_check():
    problems = ingest_problems(_stats(callback_errors=2, handed=8), 0.01)
    assert any("2 messages failed in the ingest" in p for p in problems)
    assert any("2 values submitted to the store never reached the writer" in p for p in problems)
    assert "2 callback errors" in summary_line(_stats(callback_errors=2))
