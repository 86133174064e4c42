"""The CHAMP answer grader (``hf_saerl.demo.grading``): hand-checked verdicts on summaries and references."""

import pytest

from hf_saerl.demo.grading import extract_answers, grade_answer, parse_reference


@pytest.mark.parametrize(
    "summary, reference, expected",
    [
        # digits are not substrings of other numbers
        ("There are 13 ways to do it.", "3", False),
        ("There are 3 ways to do it.", "13", False),
        ("There are 3 ways to do it.", "3", True),
        # fractions, decimals, LaTeX
        ("The smallest value is 0.5.", "@@1/2@@", True),
        (r"The smallest value is \( \frac{1}{2} \), when a = b.", "0.5", True),
        (r"The smallest value is $\boxed{\frac{3}{2}}$.", "3/2", True),
        ("The smallest value is 1.5.", "3/2", True),
        ("The smallest value is 1/3.", "1/2", False),
        # sign
        ("The smallest value is 9.", "-9", False),
        ("The smallest value is -9.", "-9", True),
        ("The smallest value is \u22129.", "-9", True),
        ("The smallest value is $-9$, when a = b = c = 3.", "-9", True),
        # units and approximations
        ("The probability is 35.7%.", "@@5/14@@, or approximately 35.7%", None),
        ("The probability is approximately 0.357.", "5/14", None),
        ("The probability is 0.357.", "5/14", None),
        ("The probability is 5/14.", "@@5/14@@, or approximately 35.7%", True),
        ("The angle is 90 degrees.", "90", None),
        ("There are 98 values of n for which it holds.", "98 values", True),
        ("There are two such inequalities.", "2 inequalities", True),
        ("There are 2,001,000 terms.", "2001000", True),
        # surds and binomials
        (r"The largest value is \( \frac{\sqrt{3}}{3} \).", "@@sqrt(3)/3@@, or equivalently @@1/sqrt(3)@@", True),
        ("The largest value is 1/\u221a3.", "@@sqrt(3)/3@@, or equivalently @@1/sqrt(3)@@", True),
        ("The largest value is \u221a2.", "@@sqrt(3)/3@@, or equivalently @@1/sqrt(3)@@", False),
        (r"There are $\binom{10}{5}$ strings.", "@@C(10, 5)@@, or equivalently @@252@@", True),
        ("There are 251 strings.", "@@C(10, 5)@@, or equivalently @@252@@", False),
        # expressions in n
        ("The number of sequences is 2^(n-1).", "@@2^(n-1)@@", True),
        (r"The number of sequences is $2^{n-1}$.", "@@2^(n-1)@@", True),
        ("The number of sequences is 2^n/2.", "@@2^(n-1)@@", True),
        ("The number of sequences is 2^n.", "@@2^(n-1)@@", False),
        ("The number of sequences is 64.", "@@2^(n-1)@@", False),
        ("The number of arrangements is n!.", "@@n!@@", True),
        ("The number of arrangements is (n-1)!.", "@@n!@@", False),
        # sets
        ("The possible values are 1, 4, and 9.", "1, 4 and 9", True),
        ("The possible values are 9, 4 and 1.", "1, 4 and 9", True),
        ("The possible values are 1 and 4.", "1, 4 and 9", False),
        ("The possible values are 0, 3, and 6.", "0 is the only possible value", False),
        ("The only possible value is 0.", "0 is the only possible value", True),
        # not gradable: alternatives, ranges, cases, conflicts, glued words, prose
        ("The value is 0 or 1.", "0", None),
        ("The values are 1, 3, 5, or 7.", "1, 3, 5 and 7", None),
        ("The count is 2 for even n and 3 for odd n.", "2", None),
        ("If n is 3, the answer is 5.", "5", None),
        ("The minimum value is -2abc.", "-2", None),
        ("The expression does not have a smallest value.", "2", None),
        ("The number of strings is 2^6 = 64.", "64", True),
        ("The number of strings is 243 - 1080 + 324 = 162.", "162", None),
        # not gradable: the reference
        ("No, there are no integer solutions.", "No", None),
        ("The factorization is (x^2+x+1)(x^2-x+1).", "@@(x^2+x+1)(x^2-x+1)@@", None),
    ],
)
def test_grade_answer(summary, reference, expected):
    assert grade_answer(summary, reference) is expected


def test_statements_copied_from_the_problem_are_skipped():
    problem = "How many strings of length 6 have adjacent digits differing by less than or equal to 1?"
    summary = "There are 29 strings of length 6 where adjacent digits differ by less than or equal to 1."
    assert extract_answers(summary, problem) == [("29",)]
    assert grade_answer(summary, "239", problem=problem) is False
    assert grade_answer(summary.replace("29", "239"), "239", problem=problem) is True


def test_parse_reference_wrappers():
    assert parse_reference("100 (i.e., all values)").forms == ((100,),)
    assert parse_reference("3 is the only possible value").forms == ((3,),)
    assert parse_reference("The limit exists and is equal to @@2/3@@").forms[0][0] == pytest.approx(2 / 3)
    assert parse_reference("@@2*C(10, 5)@@, or equivalently @@504@@").forms == ((504,), (504,))
    assert parse_reference("376 and 625").forms == ((376, 625),)
    assert parse_reference("@@n(n-3)/2@@").symbols == {"n"}
    for ungradable in ["Yes", "No integer solutions", "@@x=6, y=5@@", "@@[-1, 1]@@", "At least 1 number"]:
        assert parse_reference(ungradable) is None, ungradable
