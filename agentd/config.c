/*
 * Configuration: the table of known keys with their defaults, the key = value
 * file, and the option parser shared by subcommands. Flags are the same keys
 * (--listen, --data, ...) and win over the file.
 */
#include "agentd/cli.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const struct config_key {
	const char *name;
	const char *def;
} config_keys[] = {
	{"listen", "127.0.0.1:8080"},
	{"data", "./data"},
	{"model", "models/agentd-small.gguf"},
	{"remote", ""},
	{"remote_model", ""},
	{"remote_api_key", ""},
	{"log_level", "info"},
	{"threads", "4"},                /* HTTP worker threads */
	{"max_body_bytes", "33554432"},  /* request body limit (32 MiB) */
	{"connection_memory", "131072"}, /* libmicrohttpd per-connection memory */
	{"connection_timeout", "30"},    /* seconds a connection may stay idle */
	{"per_ip_connections", "64"},    /* concurrent connections from one address */
	{"max_connections", "512"},
	{"shutdown_timeout", "30"}, /* seconds in-flight requests get on SIGTERM */
	{"fault_injection", "0"},   /* tests only: honour X-Agentd-Fail-Alloc */
	{"engine_threads", "2"},
	{"engine_kernels", "best"},   /* engine_set_kernels: "avx512vnni" trades exactness for speed */
	{"run_workers", "2"},         /* threads executing agent and workflow runs */
	{"memory_kv_tokens", "8192"}, /* attention K/V entries kept in each user's memory */
	{"policy_file", ""},
	{"audit_checkpoint_every", "1000"},  /* records between signed checkpoints */
	{"audit_retention_days", "0"},       /* 0 keeps every record */
	{"max_document_bytes", "209715200"}, /* largest document accepted for ingestion (200 MiB) */
	{"web_root", "web"}, /* the console's static files; relative: to the cwd, else to the install dir */
};

#define NKEYS (sizeof config_keys / sizeof config_keys[0])

struct agentd_config {
	char *values[NKEYS]; /* NULL: the default */
};

static int key_index(const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].name, key) == 0)
			return (int)i;
	return -1;
}

int agentd_config_new(agentd_config **out)
{
	*out = ag_calloc(1, sizeof **out);
	if (!*out)
		return ag_error_set(AG_ENOMEM, "out of memory creating the configuration");
	return 0;
}

void agentd_config_free(agentd_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		ag_free(cfg->values[i]);
	ag_free(cfg);
}

int agentd_config_set(agentd_config *cfg, const char *key, const char *value)
{
	int i = key_index(key);
	if (i < 0)
		return ag_error_set(AG_EINVAL, "unknown configuration key '%s'", key);
	char *v = ag_strdup(value);
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory setting '%s'", key);
	ag_free(cfg->values[i]);
	cfg->values[i] = v;
	return 0;
}

const char *agentd_config_get(const agentd_config *cfg, const char *key)
{
	int i = key_index(key);
	if (i < 0)
		return NULL;
	return cfg->values[i] ? cfg->values[i] : config_keys[i].def;
}

int agentd_config_get_long(const agentd_config *cfg, const char *key, long long min, long long max,
			   long long *out)
{
	const char *v = agentd_config_get(cfg, key);
	if (!v)
		return ag_error_set(AG_EINVAL, "unknown configuration key '%s'", key);
	int rc = ag_parse_long(v, min, max, out);
	if (rc)
		return ag_error_wrap(rc, "configuration '%s'", key);
	return 0;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

int agentd_config_parse(agentd_config *cfg, const char *data, size_t len, const char *name)
{
	char *text = ag_strndup(data, len);
	if (!text)
		return ag_error_set(AG_ENOMEM, "out of memory reading configuration");
	if (strlen(text) != len) {
		ag_free(text);
		return ag_error_set(AG_EINVAL, "%s: configuration holds a NUL byte", name);
	}
	int lineno = 0, rc = 0;
	char *line = text, *next;
	for (; line && *line; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *s = trim(line);
		if (!*s)
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			rc = ag_error_set(AG_EINVAL, "%s:%d: expected 'key = value'", name, lineno);
			break;
		}
		*eq = '\0';
		char *key = trim(s), *value = trim(eq + 1);
		size_t vl = strlen(value);
		if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
			value[vl - 1] = '\0';
			value++;
		}
		if ((rc = agentd_config_set(cfg, key, value))) {
			ag_error_wrap(rc, "%s:%d", name, lineno);
			break;
		}
	}
	ag_free(text);
	return rc;
}

int agentd_config_load(agentd_config *cfg, const char *path)
{
	char *text;
	size_t len;
	int rc = ag_read_file(path, 1 << 20, &text, &len);
	if (rc)
		return ag_error_wrap(rc, "reading configuration");
	rc = agentd_config_parse(cfg, text, len, path);
	ag_free(text);
	return rc;
}

int agentd_cli_parse(int argc, char **argv, agentd_config *cfg, const char *const *extra,
		     const char **extra_values, const char **positional, int max_pos, int *npositional)
{
	int npos = 0;
	const char *config_file = NULL;
	if (extra)
		for (int e = 0; extra[e]; e++)
			extra_values[e] = NULL;
	/* The config file is read first so that flags override it wherever they stand. */
	for (int i = 0; i < argc - 1; i++)
		if (strcmp(argv[i], "--config") == 0)
			config_file = argv[i + 1];
	if (config_file && agentd_config_load(cfg, config_file)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		return 2;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || strcmp(a, "--") == 0) {
			if (strcmp(a, "--") == 0) {
				for (i++; i < argc; i++) {
					if (npos >= max_pos)
						goto too_many;
					positional[npos++] = argv[i];
				}
				break;
			}
			if (npos >= max_pos)
				goto too_many;
			positional[npos++] = a;
			continue;
		}
		const char *name = a + 2;
		const char *value = NULL;
		char namebuf[64];
		const char *eq = strchr(name, '=');
		if (eq) {
			size_t n = (size_t)(eq - name);
			if (n >= sizeof namebuf) {
				fprintf(stderr, "agentd: unknown option %s\n", a);
				return 2;
			}
			memcpy(namebuf, name, n);
			namebuf[n] = '\0';
			name = namebuf;
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[i + 1];
		}
		if (!value) {
			fprintf(stderr, "agentd: option --%s needs a value\n", name);
			return 2;
		}
		bool matched = false;
		if (extra) {
			for (int e = 0; extra[e]; e++) {
				if (strcmp(extra[e], name) == 0) {
					extra_values[e] = value;
					matched = true;
				}
			}
		}
		if (!matched && strcmp(name, "config") != 0) {
			if (key_index(name) < 0) {
				fprintf(stderr, "agentd: unknown option --%s\n", name);
				return 2;
			}
			if (agentd_config_set(cfg, name, value)) {
				fprintf(stderr, "agentd: %s\n", ag_error_last());
				return 2;
			}
		}
		if (!eq)
			i++;
	}
	*npositional = npos;
	return 0;
too_many:
	fprintf(stderr, "agentd: too many arguments\n");
	return 2;
}
