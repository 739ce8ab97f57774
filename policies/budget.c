/*
 * Budgets: a role's per-run limits (steps, tokens, seconds, tool calls), a
 * tracker that enforces them exactly at the limit, and the per-user rate of
 * runs (a sliding 60-second window kept as the start times of recent runs in
 * a small hash table under a mutex).
 */
#include "policies/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

int policies_role_budget(const policies_policy *p, const char *role, policies_budget *out)
{
	const pol_role *r = pol_find_role(p, role);
	if (!r)
		return ag_error_set(AG_ENOTFOUND, "role '%s' is not defined by the policy", role ? role : "");
	*out = r->budget;
	return 0;
}

void policies_budget_clamp(policies_budget *limits, const policies_budget *requested)
{
	long long *l[] = {&limits->steps, &limits->tokens, &limits->seconds, &limits->tool_calls,
			  &limits->runs_per_minute};
	const long long q[] = {requested->steps, requested->tokens, requested->seconds, requested->tool_calls,
			       requested->runs_per_minute};
	for (int i = 0; i < 5; i++)
		if (q[i] > 0 && q[i] < *l[i])
			*l[i] = q[i];
}

void policies_run_budget_init(policies_run_budget *b, const policies_budget *limits)
{
	memset(b, 0, sizeof *b);
	b->limits = *limits;
	b->started_ns = ag_monotonic_ns();
}

/* Charges n against used/limit: allowed while the total stays at or below the limit. */
static int charge(long long *used, long long limit, long long n, const char *rule, const char *what,
		  policies_decision *out)
{
	if (n < 0)
		return ag_error_set(AG_EINVAL, "negative %s", what);
	if (*used + n > limit) {
		pol_decide(out, POLICIES_DENY, rule, "%s budget exhausted: %lld used + %lld > limit %lld",
			   what, *used, n, limit);
		return pol_log_decision("budget", NULL, out);
	}
	*used += n;
	pol_decide(out, POLICIES_ALLOW, rule, "%s %lld of %lld", what, *used, limit);
	return pol_log_decision("budget", NULL, out);
}

int policies_run_budget_step(policies_run_budget *b, policies_decision *out)
{
	return charge(&b->steps, b->limits.steps, 1, "budget.steps", "steps", out);
}

int policies_run_budget_tokens(policies_run_budget *b, long long n, policies_decision *out)
{
	return charge(&b->tokens, b->limits.tokens, n, "budget.tokens", "tokens", out);
}

int policies_run_budget_tool_call(policies_run_budget *b, policies_decision *out)
{
	return charge(&b->tool_calls, b->limits.tool_calls, 1, "budget.tool_calls", "tool calls", out);
}

int policies_run_budget_time(policies_run_budget *b, int64_t now_ns, policies_decision *out)
{
	int64_t used_ns = now_ns - b->started_ns;
	if (used_ns > b->limits.seconds * 1000000000LL) {
		pol_decide(out, POLICIES_DENY, "budget.seconds",
			   "time budget exhausted: %.3f s used > limit %lld s", (double)used_ns / 1e9,
			   b->limits.seconds);
		return pol_log_decision("budget", NULL, out);
	}
	pol_decide(out, POLICIES_ALLOW, "budget.seconds", "%.3f s of %lld s", (double)used_ns / 1e9,
		   b->limits.seconds);
	return pol_log_decision("budget", NULL, out);
}

/* ------------------------------------------------------- runs per minute */

#define RL_WINDOW_MS 60000
#define RL_BUCKETS   256

typedef struct rl_user {
	struct rl_user *next;
	char *key;     /* "tenant\nuser" */
	int64_t *when; /* start times of recent runs, oldest first, a ring of cap entries */
	int head, n, cap;
	int64_t last_ms;
} rl_user;

struct policies_ratelimit {
	pthread_mutex_t mu;
	rl_user *buckets[RL_BUCKETS];
	int users;
};

int policies_ratelimit_new(policies_ratelimit **out)
{
	policies_ratelimit *rl = ag_calloc(1, sizeof *rl);
	if (!rl)
		return ag_error_set(AG_ENOMEM, "out of memory creating the rate limiter");
	pthread_mutex_init(&rl->mu, NULL);
	*out = rl;
	return 0;
}

static void user_free(rl_user *u)
{
	ag_free(u->key);
	ag_free(u->when);
	ag_free(u);
}

void policies_ratelimit_free(policies_ratelimit *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < RL_BUCKETS; i++)
		for (rl_user *u = rl->buckets[i], *nx; u; u = nx) {
			nx = u->next;
			user_free(u);
		}
	pthread_mutex_destroy(&rl->mu);
	ag_free(rl);
}

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Drops users idle for a whole window so the table does not grow with every user ever seen. */
static void sweep(policies_ratelimit *rl, int64_t now_ms)
{
	for (int i = 0; i < RL_BUCKETS; i++) {
		rl_user **pp = &rl->buckets[i];
		while (*pp) {
			rl_user *u = *pp;
			if (now_ms - u->last_ms >= RL_WINDOW_MS) {
				*pp = u->next;
				user_free(u);
				rl->users--;
			} else {
				pp = &u->next;
			}
		}
	}
}

static int find_user(policies_ratelimit *rl, const char *key, int64_t now_ms, rl_user **out)
{
	unsigned b = hash(key) % RL_BUCKETS;
	for (rl_user *u = rl->buckets[b]; u; u = u->next)
		if (strcmp(u->key, key) == 0) {
			*out = u;
			return 0;
		}
	if (rl->users >= RL_BUCKETS * 16)
		sweep(rl, now_ms);
	rl_user *u = ag_calloc(1, sizeof *u);
	if (!u || !(u->key = ag_strdup(key))) {
		ag_free(u);
		return ag_error_set(AG_ENOMEM, "out of memory in the rate limiter");
	}
	u->next = rl->buckets[b];
	rl->buckets[b] = u;
	rl->users++;
	*out = u;
	return 0;
}

int policies_ratelimit_check(policies_ratelimit *rl, const policies_principal *who, long long limit,
			     int64_t now_ms, policies_decision *out)
{
	char key[256];
	snprintf(key, sizeof key, "%s\n%s", who && who->tenant ? who->tenant : "",
		 who && who->user ? who->user : "");
	if (limit > 1000000)
		limit = 1000000;
	pthread_mutex_lock(&rl->mu);
	rl_user *u = NULL;
	int rc = find_user(rl, key, now_ms, &u);
	if (rc) {
		pthread_mutex_unlock(&rl->mu);
		return rc;
	}
	/* Forget runs that left the window. */
	while (u->n > 0 && now_ms - u->when[u->head] >= RL_WINDOW_MS) {
		u->head = (u->head + 1) % u->cap;
		u->n--;
	}
	u->last_ms = now_ms;
	if (u->n >= limit) {
		pol_decide(out, POLICIES_DENY, "budget.runs_per_minute",
			   "%d runs in the last minute, limit %lld", u->n, limit);
		pthread_mutex_unlock(&rl->mu);
		return pol_log_decision("rate", who, out);
	}
	if (u->n == u->cap) {
		int nc = u->cap ? u->cap * 2 : 8;
		int64_t *w = ag_malloc((size_t)nc * sizeof *w);
		if (!w) {
			pthread_mutex_unlock(&rl->mu);
			return ag_error_set(AG_ENOMEM, "out of memory in the rate limiter");
		}
		for (int i = 0; i < u->n; i++)
			w[i] = u->when[(u->head + i) % u->cap];
		ag_free(u->when);
		u->when = w;
		u->head = 0;
		u->cap = nc;
	}
	u->when[(u->head + u->n) % u->cap] = now_ms;
	u->n++;
	pol_decide(out, POLICIES_ALLOW, "budget.runs_per_minute", "%d runs in the last minute, limit %lld",
		   u->n, limit);
	pthread_mutex_unlock(&rl->mu);
	return pol_log_decision("rate", who, out);
}
