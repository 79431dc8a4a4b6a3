/* fuzz_config.c - fuzzes the configuration reader (config_ini.c driven by the key table):
 * any bytes as a config file must load or be refused with a message, never crash or leak. The input
 * is written to a temporary file because cs_config_load reads a path. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	if (path[0] == '\0')
		snprintf(path, sizeof path, "/tmp/cs-fuzz-config.%d.ini", (int)getpid());
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return 0;
	if (size && fwrite(data, 1, size, f) != size) {
		fclose(f);
		return 0;
	}
	fclose(f);
	char err[CS_CONFIG_ERRLEN];
	cs_config *cfg = cs_config_load(path, err);
	unlink(path);
	if (cfg) {
		/* show must never print past a secret or crash on odd values */
		FILE *out = fopen("/dev/null", "w");
		if (out) {
			cs_config_show(cfg, out);
			fclose(out);
		}
		cs_config_free(cfg);
	} else if (memchr(err, '\0', sizeof err) == NULL) {
		abort(); /* the message must be a string */
	}
	return 0;
}
