/*
 * agentd's command line and configuration (internal to agentd/).
 *
 * Each subcommand is a function taking the arguments after its name and
 * returning the exit status: 0 success, 1 runtime error, 2 usage error (with
 * a one-line message on stderr). The table in agentd/main.c maps names to
 * them. Configuration is a key = value file (--config FILE) whose keys can
 * also be given as flags (--listen, --data, --model, ...), flags winning.
 */
#ifndef AGENTD_CLI_H
#define AGENTD_CLI_H

#include "common/common.h"

typedef struct agentd_config agentd_config;

/* Creates a configuration holding the built-in defaults. */
int agentd_config_new(agentd_config **out);
void agentd_config_free(agentd_config *cfg);
/* Loads FILE (key = value lines, '#' comments); errors name the line. */
int agentd_config_load(agentd_config *cfg, const char *path);
/* The same from text in memory; name labels error messages. */
int agentd_config_parse(agentd_config *cfg, const char *text, size_t len, const char *name);
/* Sets one key (a flag overriding the file). Unknown keys are AG_EINVAL. */
int agentd_config_set(agentd_config *cfg, const char *key, const char *value);
const char *agentd_config_get(const agentd_config *cfg, const char *key); /* never NULL for known keys */
/* A key's value as an integer within [min, max]. */
int agentd_config_get_long(const agentd_config *cfg, const char *key, long long min, long long max,
			   long long *out);

/* Parses the options common to subcommands that touch stored data:
 * --config FILE, --data DIR, and --KEY VALUE for any known configuration key.
 * Arguments that are not options are left in positional[] (at most max_pos).
 * Options a command takes itself are listed in extra (NULL-terminated, each
 * "name" taking a value); their values land in extra_values[i] (or NULL).
 * Returns 0, or 2 after printing a usage message. */
int agentd_cli_parse(int argc, char **argv, agentd_config *cfg, const char *const *extra,
		     const char **extra_values, const char **positional, int max_pos, int *npositional);

/* Opens DATA/agentd.db (creating DATA with mode 0700) and brings every
 * module's schema up to date. */
int agentd_store_open(const agentd_config *cfg, sqlite3 **out);

/* Subcommands. */
int agentd_cmd_serve(int argc, char **argv);
int agentd_cmd_keys(int argc, char **argv);
int agentd_cmd_ingest(int argc, char **argv);
int agentd_cmd_ask(int argc, char **argv);
int agentd_cmd_generate(int argc, char **argv);
int agentd_cmd_logits(int argc, char **argv);
int agentd_cmd_audit(int argc, char **argv);
int agentd_cmd_policy(int argc, char **argv);

#endif
