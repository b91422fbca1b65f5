/* test-journal.c - the eviction's journal records: every message id of
 * evidence/journal.h has its entry in packaging/systemd/spot-agent.catalog
 * and every entry there is one of them; a catalogued record carries its
 * MESSAGE_ID and fields as keys of a JSON line, and the same text line as
 * any other record; the fields every record starts with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "evidence/journal.h"
#include "log.h"

#define CATALOG "packaging/systemd/spot-agent.catalog"

static bool is_id(const char *s)
{
	for (size_t i = 0; i < 32; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return s[32] == '\0';
}

static void test_catalog_matches_ids(void **state)
{
	FILE *f = fopen(CATALOG, "r");
	char line[512], found[32][33];
	size_t n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "-- ", 3) != 0)
			continue;
		if (!is_id(line + 3))
			fail_msg("catalog: '%s' is not '-- ' and 32 lower-case hex digits", line);
		assert_true(n < ELEMENTSOF(found));
		(void)strscpy(found[n++], sizeof(found[0]), line + 3);
	}
	fclose(f);
	for (size_t i = 0; i < n; i++) {
		bool known = false;

		for (size_t j = 0; j < evidence_message_ids_n; j++)
			known = known || strcmp(found[i], evidence_message_ids[j]) == 0;
		if (!known)
			fail_msg("catalog: %s is no message id of evidence/journal.h", found[i]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(found[i], found[j]) == 0)
				fail_msg("catalog: %s twice", found[i]);
	}
	for (size_t j = 0; j < evidence_message_ids_n; j++) {
		bool listed = false;

		assert_true(is_id(evidence_message_ids[j]));
		for (size_t i = 0; i < n; i++)
			listed = listed || strcmp(found[i], evidence_message_ids[j]) == 0;
		if (!listed)
			fail_msg("evidence/journal.h: %s has no entry in " CATALOG, evidence_message_ids[j]);
	}
	assert_int_equal(n, evidence_message_ids_n);
}

static char *captured(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	char *s;
	long len;

	fflush(stderr);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	fseek(tmp, 0, SEEK_END);
	len = ftell(tmp);
	rewind(tmp);
	s = calloc(1, (size_t)len + 1);
	assert_int_equal(fread(s, 1, (size_t)len, tmp), (size_t)len);
	fclose(tmp);
	return s;
}

static void emit_failed(void)
{
	struct evidence_fields f;

	evidence_fields_init(&f, EVENT_PREEMPT, "azure", UINT64_C(1796125830000000), UINT64_C(1796125828000000));
	evidence_fields_add(&f, "SPOT_EXIT_STATUS", "%d", 3);
	evidence_fields_add(&f, "SPOT_DURATION_USEC", "%u", 1500000u);
	log_emit_fields(LOG_WARNING, EVIDENCE_MESSAGE_HOOK_FAILED, "ev-1", "10-checkpoint", f.v,
			"hook '%s' exited %d", "10-checkpoint", 3);
}

static void test_json_record(void **state)
{
	char *out;
	cJSON *o;

	log_setup(LOG_FORMAT_JSON, LOG_DEBUG);
	out = captured(emit_failed);
	o = cJSON_Parse(out);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "message_id")->valuestring,
			    EVIDENCE_MESSAGE_HOOK_FAILED);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "event_id")->valuestring, "ev-1");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "hook")->valuestring, "10-checkpoint");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "spot_event_type")->valuestring, "Preempt");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "spot_provider")->valuestring, "azure");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "spot_not_before_usec")->valuestring,
			    "1796125830000000");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "spot_deadline_usec")->valuestring,
			    "1796125828000000");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "spot_exit_status")->valuestring, "3");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "spot_duration_usec")->valuestring, "1500000");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "message")->valuestring,
			    "hook '10-checkpoint' exited 3");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "level")->valuestring, "warning");
	cJSON_Delete(o);
	free(out);
}

static void test_text_record_unchanged(void **state)
{
	char *out;

	log_setup(LOG_FORMAT_TEXT, LOG_DEBUG);
	out = captured(emit_failed);
	assert_non_null(strstr(out, " spot-agent: warning: [ev-1 10-checkpoint] hook '10-checkpoint' exited 3\n"));
	assert_null(strstr(out, "SPOT_"));
	assert_null(strstr(out, EVIDENCE_MESSAGE_HOOK_FAILED));
	free(out);
}

static void test_fields(void **state)
{
	struct evidence_fields f;

	/* Unknown times are left out. */
	evidence_fields_init(&f, EVENT_SHUTDOWN, "gcp", 0, 5);
	assert_int_equal(f.n, 3);
	assert_string_equal(f.v[0], "SPOT_EVENT_TYPE=Shutdown");
	assert_string_equal(f.v[1], "SPOT_PROVIDER=gcp");
	assert_string_equal(f.v[2], "SPOT_DEADLINE_USEC=5");
	assert_null(f.v[3]);
	for (int i = 0; i < 20; i++)
		evidence_fields_add(&f, "SPOT_X", "%d", i);
	assert_int_equal(f.n, EVIDENCE_FIELDS_MAX);
	assert_null(f.v[EVIDENCE_FIELDS_MAX]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalog_matches_ids),
		cmocka_unit_test(test_json_record),
		cmocka_unit_test(test_text_record_unchanged),
		cmocka_unit_test(test_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
