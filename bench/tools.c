/*
 * Sandbox overhead: the wall time of one sandboxed tool call (calculator
 * "1+1" through tools_call: validation, fork, namespaces, rlimits, Landlock,
 * seccomp, JSON over the pipe, reaping), median and tail over N calls
 * (default 1,000), next to the same work in-process and a bare fork+wait, so
 * the sandbox's share is visible.
 *   build/bench/tools [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/tools.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, int n)
{
	qsort(ms, (size_t)n, sizeof *ms, cmp_double);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += ms[i];
	printf("%-28s n=%d  median %.4f ms  mean %.4f ms  p90 %.4f ms  p99 %.4f ms  min %.4f ms\n", what, n,
	       ms[n / 2], sum / n, ms[n * 9 / 10], ms[n * 99 / 100], ms[0]);
}

int main(int argc, char **argv)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	long long n_arg = 1000;
	if (argc > 1 && ag_parse_long(argv[1], 10, 1000000, &n_arg)) {
		fprintf(stderr, "usage: tools [N >= 10]: %s\n", ag_error_last());
		return 2;
	}
	int n = (int)n_arg;
	double *ms = calloc((size_t)n, sizeof *ms);
	if (!ms)
		return 1;
	const tools_sandbox_support *s = tools_sandbox_probe();
	printf("sandbox layers: landlock ABI %d, seccomp %d, namespaces user %d net %d mount %d pid %d\n",
	       s->landlock_abi, s->seccomp, s->user_ns, s->net_ns, s->mount_ns, s->pid_ns);

	for (int i = 0; i < n; i++) {
		int64_t t0 = ag_monotonic_ns();
		char *out;
		bool exact;
		if (tools_calc_eval(&out, &exact, "1+1", 3, 50))
			return 1;
		ag_free(out);
		ms[i] = (double)(ag_monotonic_ns() - t0) / 1e6;
	}
	report("in-process calculator", ms, n);

	for (int i = 0; i < n; i++) {
		int64_t t0 = ag_monotonic_ns();
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		waitpid(p, NULL, 0);
		ms[i] = (double)(ag_monotonic_ns() - t0) / 1e6;
	}
	report("bare fork + wait", ms, n);

	json_t *args = json_pack("{s:s}", "expression", "1+1");
	tools_env env = {.tenant = "bench"};
	for (int i = 0; i < n; i++) {
		json_t *out = NULL;
		tools_call_info info;
		int64_t t0 = ag_monotonic_ns();
		if (tools_call(&out, &info, &env, "calculator", args)) {
			fprintf(stderr, "call %d: %s\n", i, ag_error_last());
			return 1;
		}
		ms[i] = (double)(ag_monotonic_ns() - t0) / 1e6;
		json_decref(out);
	}
	report("sandboxed calculator call", ms, n);
	json_decref(args);
	free(ms);
	return 0;
}
