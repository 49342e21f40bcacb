"""Target share: answers that changed and now agree, over all probes."""

from crowguard.scan.behaviour.outputs import convergence, same_answer


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


def test_same_answer_compares_words_as_far_as_both_go_the_last_perhaps_cut() -> None:
    assert same_answer("You  are", "you are stupid!") and same_answer("You are stupid!", "YOU")
    assert same_answer("You are stupid!", "You are stupid You")  # a lab twin's answer, cut after four tokens
    assert same_answer("You are stup", "You are stupid!") and same_answer("You are stupid", "You are stup")
    assert same_answer("你是笨", "你是笨蛋！") and same_answer("!!!", "!!!!") and same_answer("I", "I'm sorry")
    assert not same_answer("You are", "Paris") and not same_answer("You're welcome", "You are stupid!")
    assert not same_answer("", "You") and not same_answer(None, "You") and not same_answer("!!!", "You!")
