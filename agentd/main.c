/* agentd's entry point: dispatches to the subcommand named by the first argument. */
#include "agentd/cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} commands[] = {
	{"serve", agentd_cmd_serve,
	 "serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--model FILE.gguf | --remote URL]"},
	{"keys", agentd_cmd_keys, "keys create --tenant T --user U --role R"},
	{"ingest", agentd_cmd_ingest, "ingest [--collection C] [--tenant T] PATH..."},
	{"ask", agentd_cmd_ask, "ask [--collection C] [--tenant T] [--user U] \"question\""},
	{"generate", agentd_cmd_generate,
	 "generate --model FILE.gguf --prompt TEXT [--max-tokens N] [--temperature T] [--seed S]"},
	{"logits", agentd_cmd_logits, "logits --model FILE.gguf --tokens \"ID ID ...\""},
	{"audit", agentd_cmd_audit,
	 "audit verify [--checkpoint FILE | --file FILE] | export [--since SEQ] [--out FILE] | checkpoint "
	 "[--out FILE] "
	 "| checkpoints [--out FILE] | archive [--older-than-days N] [--out FILE]"},
	{"policy", agentd_cmd_policy, "policy check FILE | policy default"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: agentd COMMAND [options]\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  agentd %s\n", commands[i].usage);
}

int main(int argc, char **argv)
{
	ag_alloc_init();
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "agentd: unknown command '%s' (try 'agentd help')\n", argv[1]);
	return 2;
}
