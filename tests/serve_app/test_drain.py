"""The Ray pods' preStop hook (serve_app/drain.py): what counts as still busy on a node, and the wait."""

from __future__ import annotations

from serve_app.drain import busy_on_node, wait_until_drained


def test_replicas_on_the_node_and_an_undrained_proxy_are_busy():
    actors = [
        {"node_id": "n1", "state": "ALIVE", "class_name": "ServeReplica:model-small:LLMServer:small"},
        {"node_id": "n1", "state": "DEAD", "class_name": "ServeReplica:llm:OpenAiIngress"},
        {"node_id": "n2", "state": "ALIVE", "class_name": "ServeReplica:llm:OpenAiIngress"},
        {"node_id": "n1", "state": "ALIVE", "class_name": "ProxyActor"},
    ]
    assert busy_on_node("n1", actors, "DRAINING") == ["ServeReplica:model-small:LLMServer:small", "proxy DRAINING"]
    assert busy_on_node("n1", actors[1:], "DRAINED") == []
    assert busy_on_node("n1", [], None) == [], "no proxy on the node"
    assert busy_on_node("n1", [], "HEALTHY") == ["proxy HEALTHY"]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_wait_ends_when_the_node_is_empty():
    clock, answers = Clock(), [["replica"], ["replica"], []]
    assert wait_until_drained(lambda: answers.pop(0), 60, clock=clock, sleep=clock.sleep, log=lambda _: None)
    assert clock.now == 4.0, "two polls of 2 s"


def test_the_wait_ends_at_the_deadline_and_survives_a_failed_look():
    clock = Clock()

    def busy():
        if clock.now == 2:
            raise ConnectionError("dashboard hiccup")
        return ["replica"]

    assert not wait_until_drained(busy, 10, clock=clock, sleep=clock.sleep, log=lambda _: None)
    assert clock.now == 10.0


def test_the_wait_gives_up_when_ray_cannot_be_asked_three_times_in_a_row():
    clock = Clock()

    def busy():
        raise ConnectionError("the head is gone")

    assert not wait_until_drained(busy, 900, clock=clock, sleep=clock.sleep, log=lambda _: None)
    assert clock.now == 4.0, "three looks, 2 s apart"
