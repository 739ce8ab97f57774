/*
 * The router: matches a method and path against the route tables of every
 * routes_*.c file. Patterns are literal segments and {name} segments; a path
 * that matches some route under another method gives 405 with an Allow list.
 */
#include "agentd/daemon.h"

#include <string.h>

/* Every route table the daemon serves; each ends with a {NULL} entry. */
/* clang-format off */
static const agentd_route *const route_tables[] = {
	agentd_routes_core,
	agentd_routes_memory,
	agentd_routes_retrieval,
	agentd_routes_runs,
	agentd_routes_audit,
	agentd_routes_tools,
	agentd_routes_openai,
	agentd_routes_policies,
	agentd_routes_web, /* last: its "/{file}" must not shadow literal routes */
};
/* clang-format on */

static char *percent_decode(ag_arena *arena, const char *s, size_t n)
{
	char *out = ag_arena_alloc(arena, n + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n) {
			int hi = ag_hex_digit((unsigned char)s[i + 1]),
			    lo = ag_hex_digit((unsigned char)s[i + 2]);
			if (hi >= 0 && lo >= 0) {
				out[o++] = (char)(hi << 4 | lo);
				i += 2;
				continue;
			}
		}
		out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

/* Matches path against pattern segment by segment, recording {params}. */
static bool match_pattern(const char *pattern, const char *path, ag_arena *arena, agentd_match *m, int *err)
{
	const char *p = pattern, *s = path;
	int n = 0;
	while (*p && *s) {
		if (*p != '/' || *s != '/')
			return false;
		p++;
		s++;
		const char *pe = strchr(p, '/');
		const char *se = strchr(s, '/');
		size_t pl = pe ? (size_t)(pe - p) : strlen(p);
		size_t sl = se ? (size_t)(se - s) : strlen(s);
		if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
			if (sl == 0 || n >= 8)
				return false;
			char *v = percent_decode(arena, s, sl);
			if (!v) {
				*err = AG_ENOMEM;
				return false;
			}
			char *name = ag_arena_strndup(arena, p + 1, pl - 2);
			if (!name) {
				*err = AG_ENOMEM;
				return false;
			}
			m->param_names[n] = name;
			m->param_values[n] = v;
			n++;
		} else if (pl != sl || memcmp(p, s, pl) != 0) {
			return false;
		}
		p += pl;
		s += sl;
	}
	if (*p || *s)
		return false;
	m->nparams = n;
	return true;
}

int agentd_router_match(const char *method, const char *path, ag_arena *arena, agentd_match *out)
{
	memset(out, 0, sizeof *out);
	size_t allow_len = 0;
	for (size_t t = 0; t < sizeof route_tables / sizeof route_tables[0]; t++) {
		for (const agentd_route *r = route_tables[t]; r->method; r++) {
			agentd_match m;
			memset(&m, 0, sizeof m);
			int err = 0;
			if (!match_pattern(r->pattern, path, arena, &m, &err)) {
				if (err)
					return ag_error_set(err, "out of memory routing a request");
				continue;
			}
			if (strcmp(r->method, method) == 0 && !out->route) {
				out->route = r;
				out->nparams = m.nparams;
				memcpy(out->param_names, m.param_names, sizeof m.param_names);
				memcpy(out->param_values, m.param_values, sizeof m.param_values);
			}
			out->path_known = true;
			size_t ml = strlen(r->method);
			if (!strstr(out->allow, r->method) && allow_len + ml + 2 < sizeof out->allow) {
				if (allow_len) {
					memcpy(out->allow + allow_len, ", ", 2);
					allow_len += 2;
				}
				memcpy(out->allow + allow_len, r->method, ml);
				allow_len += ml;
				out->allow[allow_len] = '\0';
			}
		}
	}
	return 0;
}
