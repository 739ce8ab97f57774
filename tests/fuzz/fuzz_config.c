/* Fuzz harness: the key = value configuration parser, then reading every key back. */
#include <stdint.h>
#include <string.h>

#include "agentd/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	agentd_config *cfg;
	if (agentd_config_new(&cfg))
		return 0;
	agentd_config_parse(cfg, (const char *)data, size, "fuzz");
	static const char *const keys[] = {"listen", "data", "threads", "max_body_bytes", "log_level", NULL};
	for (int i = 0; keys[i]; i++) {
		long long v;
		const char *s = agentd_config_get(cfg, keys[i]);
		if (s)
			(void)strlen(s);
		agentd_config_get_long(cfg, keys[i], 0, 1000, &v);
	}
	agentd_config_free(cfg);
	return 0;
}
