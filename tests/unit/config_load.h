/* config_load.h - the config tests' shared helpers (test_config.c, test_config_shards.c):
 * load a config from text, expect it to load or to fail with given words, show it. Included
 * after cmocka.h and config.h, by a file that defines `tmpdir` (a mkdtemp template),
 * `ini_path` (the file written) and `err` (CS_CONFIG_ERRLEN). Static: each test program has its own copy
 * (some marked unused: test_shardmap.c only loads). */
#ifndef CS_TEST_CONFIG_LOAD_H
#define CS_TEST_CONFIG_LOAD_H

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Writes text to <tmpdir>/cachesvc.ini and loads it. */
static cs_config *load_text(const char *text)
{
	write_file(ini_path, text, strlen(text));
	err[0] = '\0';
	return cs_config_load(ini_path, err);
}

static cs_config *load_ok(const char *text)
{
	cs_config *cfg = load_text(text);
	if (!cfg)
		fail_msg("unexpected load error: %s\n--- file ---\n%s", err, text);
	return cfg;
}

/* Asserts that loading fails with a message containing every string given (NULL ends). */
__attribute__((unused)) static void assert_load_error(const char *text, ...)
{
	cs_config *cfg = load_text(text);
	if (cfg) {
		cs_config_free(cfg);
		fail_msg("loaded, expected an error\n--- file ---\n%s", text);
	}
	va_list ap;
	va_start(ap, text);
	for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;) {
		if (!strstr(err, needle))
			fail_msg("error \"%s\" lacks \"%s\"", err, needle);
	}
	va_end(ap);
}

/* noinline: gcc 12 -Wdangling-pointer misreads open_memstream(&local) once inlined */
__attribute__((noinline, unused)) static char *show_to_string(const cs_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	cs_config_show(cfg, f);
	fclose(f);
	return buf;
}


/* cmocka group setup and teardown: the temporary directory holding ini_path. */
static int setup_dir(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(ini_path, sizeof(ini_path), "%s/cachesvc.ini", tmpdir);
	return 0;
}

static int teardown_dir(void **state)
{
	unlink(ini_path);
	return rmdir(tmpdir);
}

#endif
