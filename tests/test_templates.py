"""Template mining across messages: values found by comparison, decisive words kept."""

from __future__ import annotations

import subprocess
import sys

from testmem.memory.templates import VALUES, Miner, mine, tokens

USERS = ["webmaster", "test9", "admin", "oracle", "postgres", "guest", "nagios"]


def test_a_word_where_many_messages_disagree_becomes_a_value():
    miner, firsts = mine(f"Invalid user {u} from 10.0.0.{n}" for n, u in enumerate(USERS))

    assert len({miner.resolve(f) for f in firsts}) == 1
    assert miner.template(firsts[0]).tokens == ["Invalid", "user", "<*>", "from", "<*>"]


def test_a_few_constant_words_in_one_shape_stay_apart():
    states = ["Started", "Paused", "Resumed", "Stopped"]
    messages = [
        f"[instance: {n:08x}-aaaa] VM {s} (Lifecycle Event)" for n in range(5) for s in states
    ]

    miner, firsts = mine(messages)

    assert len({miner.resolve(f) for f in firsts}) == len(states) < VALUES


def test_messages_of_other_lengths_and_words_are_other_templates():
    miner, firsts = mine(
        [
            "jk2_init() Found child 6725 in scoreboard slot 10",
            "jk2_init() Can't find child 1566 in scoreboard",
        ]
    )

    assert miner.resolve(firsts[0]) != miner.resolve(firsts[1])


def test_two_positions_that_hold_words_together_become_values():
    line = "users with view permissions: Set({0}); users with modify permissions: Set({0})"
    miner, firsts = mine(line.format(u) for u in USERS)

    assert len({miner.resolve(f) for f in firsts}) == 1


def test_sizes_durations_hosts_and_paths_are_values_whatever_their_form():
    miner, firsts = mine(
        [
            "www.google.com:443 close, 1190 bytes (1.16 KB) sent, lifetime 00:01",
            "cdn.qq.com:80 close, 7 bytes (535 bytes) sent, lifetime <1 sec",
            "api.example.org:8443 close, 99 bytes (18.4 MB) sent, lifetime 01:02:03",
        ]
    )

    assert len({miner.resolve(f) for f in firsts}) == 1


def test_a_value_that_spans_more_tokens_joins_the_template_of_fewer():
    miner, firsts = mine(
        ["called (stack @0x7fed @0x7fef)", "called (stack @0x7fed @0x7fef @0x11 @0x12)"]
    )

    assert miner.resolve(firsts[0]) == miner.resolve(firsts[1])


def test_a_template_generalises_into_the_oldest_and_says_so():
    miner = Miner()
    added = [miner.add(f"session opened for user {u} by (uid=0)") for u in USERS]

    change = next(c for m in added for c in m.changes)
    assert change.into == added[0].first
    assert set(change.merged) == {m.first for m in added[1:VALUES]} - {added[0].first}
    assert change.positions == (4,)
    assert {m.template_id for m in added[VALUES - 1 :]} == {added[0].first}


def test_the_same_messages_in_the_same_order_mine_the_same_templates_in_any_process():
    messages = [
        f"Failed password for {u} from 10.0.0.{n} port 22 ssh2" for n, u in enumerate(USERS)
    ]
    script = (
        "import sys; from testmem.memory.templates import mine; "
        "m, f = mine(sys.stdin.read().splitlines()); print(*[m.resolve(x) for x in f])"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], input="\n".join(messages), capture_output=True, text=True
    )
    miner, firsts = mine(messages)

    assert ran.stdout.split() == [miner.resolve(f) for f in firsts]


def test_tokens_keep_punctuation_and_the_words_as_written():
    compared, raw = tokens("rhost=10.1.2.3 user=root (uid=0) at /var/log/x.log")

    assert compared == [
        "rhost",
        "=",
        "<*>",
        "user",
        "=",
        "<*>",
        "(",
        "uid",
        "=",
        "<*>",
        ")",
        "at",
        "<*>",
    ]
    assert raw[2] == "10.1.2.3" and raw[5] == "root" and raw[-1] == "/var/log/x.log"


def test_clustering_a_log_never_loads_the_model_the_index_or_duckdb():
    script = (
        "import sys; from testmem.memory.clustering import cluster_messages; "
        "r = cluster_messages(['Invalid user bob from 1.2.3.4', 'Connection closed by 1.2.3.4']); "
        "heavy = {'torch', 'sentence_transformers', 'chromadb', 'duckdb', 'onnxruntime'}; "
        "print(len(set(r.clusters)), r.embedded, sorted(heavy & set(sys.modules)))"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert ran.stdout.split() == ["2", "0", "[]"]
