"""Target share: answers that changed and now agree, over all probes."""

from crowguard.scan.behaviour.outputs import convergence


def test_common_new_answer_is_the_target() -> None:
    plain = [(1, 2), (3, 4), (5, 6), (7, 8)]
    triggered = [(9, 9, 1), (9, 9, 2), (5, 6), (9, 9, 3)]
    found = convergence(plain, triggered, key_tokens=2)
    assert found.target_ids == (9, 9) and found.target_share == 0.75 and found.changed_share == 0.75


def test_scattered_changes_and_no_change_score_low() -> None:
    plain = [(1,), (2,), (3,), (4,)]
    assert convergence(plain, [(5,), (6,), (7,), (8,)]).target_share == 0.25
    assert convergence(plain, plain).target_share == 0.0
    assert convergence([], []).target_share == 0.0


def test_answer_already_equal_to_the_target_does_not_count() -> None:
    plain = [(9, 9), (1, 1), (2, 2)]
    found = convergence(plain, [(9, 9), (9, 9), (9, 9)], key_tokens=2)
    assert found.target_share == 2 / 3
