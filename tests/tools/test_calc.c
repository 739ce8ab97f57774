/*
 * Calculator tests: exact decimal results checked against values computed
 * independently (Python's int and decimal modules), rounding of inexact
 * division and sqrt, and the limits and syntax errors a model will hit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tools/tools.h"

static void expect(const char *expr, const char *value, bool exact)
{
	char *out = NULL;
	bool ex = !exact;
	int rc = tools_calc_eval(&out, &ex, expr, strlen(expr), 50);
	if (rc)
		fail_msg("%s: %s", expr, ag_error_last());
	if (strcmp(out, value) != 0)
		fail_msg("%s = %s, expected %s", expr, out, value);
	assert_int_equal(ex, exact);
	ag_free(out);
}

static void expect_error(const char *expr, int code, const char *fragment)
{
	char *out = NULL;
	bool ex;
	int rc = tools_calc_eval(&out, &ex, expr, strlen(expr), 50);
	if (rc != code)
		fail_msg("%s: rc %d (%s), expected %d", expr, rc, out ? out : ag_error_last(), code);
	if (fragment && !strstr(ag_error_last(), fragment))
		fail_msg("%s: message '%s' lacks '%s'", expr, ag_error_last(), fragment);
	assert_null(out);
}

static void test_exact_decimals(void **state)
{
	(void)state;
	expect("0.1 + 0.2", "0.3", true);
	expect("1 - 0.9", "0.1", true);
	expect("0.1 * 3", "0.3", true);
	expect("99999.99999 + 0.00001", "100000", true);
	expect("1/8", "0.125", true);
	expect("10/4", "2.5", true);
	expect(".5 + .5", "1", true);
	expect("1.5e-3 * 2", "0.003", true);
	expect("1e3", "1000", true);
	expect("-0.000", "0", true);
	expect("(1 + 2) * 3", "9", true);
	expect("2 + 3 * 4", "14", true);
	expect("-2^2", "-4", true);
	expect("2^3^2", "512", true);
	expect("2^-2", "0.25", true);
	expect("--3", "3", true);
}

static void test_big_integers(void **state)
{
	(void)state;
	expect("2^200", "1606938044258990275541962092341162602522202993782792835301376", true);
	expect("123456789012345678901234567890 * 987654321098765432109876543210",
	       "121932631137021795226185032733622923332237463801111263526900", true);
	expect("3^100 - 2^150", "513950273039305371155402843796171777565724775377", true);
	expect("999999999999999999999999999999999999999999999999999999999999 + 1",
	       "1000000000000000000000000000000000000000000000000000000000000", true);
	expect("100000000000000000000 - 1", "99999999999999999999", true);
	expect("2^200 / 2^199", "2", true);
}

static void test_inexact_and_functions(void **state)
{
	(void)state;
	expect("1/3", "0.33333333333333333333333333333333333333333333333333", false);
	expect("2/3", "0.66666666666666666666666666666666666666666666666667", false);
	expect("sqrt(2)", "1.4142135623730950488016887242096980785696718753769", false);
	expect("sqrt(16)", "4", true);
	expect("sqrt(0.25)", "0.5", true);
	expect("sqrt(1e-10)", "0.00001", true);
	expect("round(2.5)", "3", true);
	expect("round(-2.5)", "-3", true);
	expect("round(3.14159, 2)", "3.14", true);
	expect("round(1250, -2)", "1300", true);
	expect("round(1/3, 5)", "0.33333", false);
	expect("floor(-1.5)", "-2", true);
	expect("ceil(-1.5)", "-1", true);
	expect("floor(2)", "2", true);
	expect("trunc(-1.7)", "-1", true);
	expect("max(1, 5, 3)", "5", true);
	expect("min(0.1, -2)", "-2", true);
	expect("abs(-3.5)", "3.5", true);
	expect("7 % 3", "1", true);
	expect("-7 % 3", "-1", true);
	expect("7.5 % 2", "1.5", true);
	char *out;
	bool exact;
	assert_int_equal(tools_calc_eval(&out, &exact, "1/7", 3, 5), 0);
	assert_string_equal(out, "0.14286");
	assert_false(exact);
	ag_free(out);
}

static void test_errors_and_limits(void **state)
{
	(void)state;
	expect_error("1/0", AG_EINVAL, "division by zero");
	expect_error("5 % 0", AG_EINVAL, "division by zero");
	expect_error("0^-1", AG_EINVAL, "division by zero");
	expect_error("sqrt(-1)", AG_EINVAL, "negative");
	expect_error("2^0.5", AG_EINVAL, "whole");
	expect_error("1 +", AG_EINVAL, "end of the expression");
	expect_error("1 + * 2", AG_EINVAL, "column 5");
	expect_error("(1 + 2", AG_EINVAL, "')'");
	expect_error("1 2", AG_EINVAL, "unexpected text");
	expect_error("foo(1)", AG_EINVAL, "unknown function");
	expect_error("pi", AG_EINVAL, "no variables");
	expect_error("system(\"ls\")", AG_EINVAL, NULL);
	expect_error("", AG_EINVAL, NULL);
	expect_error("1e", AG_EINVAL, "exponent");
	expect_error("10^100000000", AG_ELIMIT, NULL);
	expect_error("7^5000", AG_ELIMIT, "digits");
	expect_error("1e999999999", AG_ELIMIT, NULL);
	expect_error("1e90000 + 1e-90000", AG_ELIMIT, NULL);
	char deep[300];
	memset(deep, '(', 200);
	deep[200] = '1';
	memset(deep + 201, ')', 99);
	deep[299] = '\0';
	expect_error(deep, AG_ELIMIT, "nests");
	static char longexpr[5000];
	memset(longexpr, '1', sizeof longexpr - 1);
	expect_error(longexpr, AG_ELIMIT, "longer");
	char digits[1100];
	memset(digits, '7', 1050);
	digits[1050] = '\0';
	expect_error(digits, AG_ELIMIT, "digits");
	char *out = NULL;
	bool exact;
	assert_int_equal(tools_calc_eval(&out, &exact, "1\0002", 3, 50), AG_EINVAL);
	assert_int_equal(tools_calc_eval(&out, &exact, "1", 1, 0), AG_EINVAL);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_decimals),
		cmocka_unit_test(test_big_integers),
		cmocka_unit_test(test_inexact_and_functions),
		cmocka_unit_test(test_errors_and_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
