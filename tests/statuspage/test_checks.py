from statuspage.checks import queue_settings


def test_queue_settings_pass_as_shipped():
    assert queue_settings() == []


def test_a_retry_not_above_the_timeout_is_refused(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 90, "retry": 90}
    assert [e.id for e in queue_settings()] == ["statuspage.E001"]


def test_unlimited_attempts_are_refused(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "max_attempts": 0}
    assert [e.id for e in queue_settings()] == ["statuspage.E002"]
