/*
 * Every export called with NULL for each pointer argument in turn, the
 * other arguments valid.
 *
 * For a function returning mxl_result: a required argument passed as NULL
 * must give MXL_RESULT_NULL_ARGUMENT, an error whose code is the same and
 * whose message starts with the argument's name, and every output pointer
 * set to NULL (outputs start out holding a bogus non-NULL value, so an
 * output the library forgot to clear shows). An optional argument passed as
 * NULL must give MXL_RESULT_OK. Each function is also called once with all
 * arguments valid, which must succeed, so the NULL is what makes a failure.
 * Byte slices are passed as (NULL, their real length), which is an error;
 * (NULL, 0) is the empty slice, checked separately where it is allowed.
 *
 * Accessors and destructors, which return no mxl_result, must return their
 * documented value for NULL, and mxl_out_set and mxl_http_response_set must
 * ignore a NULL target or a (NULL, n > 0) answer. Nothing may crash.
 *
 * `make test-c` checks that this file calls every function the header
 * declares.
 */
#include "matrix_leave.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static int checks;

static void fail(const char *format, const char *a, const char *b,
                 const char *c)
{
    fprintf(stderr, "FAIL: ");
    fprintf(stderr, format, a, b, c);
    fprintf(stderr, "\n");
    failures++;
}

static void check(int ok, const char *what)
{
    checks++;
    if (!ok) {
        fail("%s%s%s", what, "", "");
    }
}

/* A non-NULL pointer no export may keep in an output after a failure. */
static char bogus;
#define BOGUS(type) ((type *)(void *)&bogus)

/* Passes NULL as argument `i` when it is the one being tested. */
#define N(i, value) (skip == (i) ? NULL : (value))

#define U8(text) ((const uint8_t *)(text))

typedef struct {
    const char *name;
    int optional; /* NULL is a valid value */
} arg;

/* Loops over the baseline (skip == -1) and each argument as NULL. */
#define FOR_EACH_NULL(args)                                                  \
    for (skip = -1; skip < (int)(sizeof(args) / sizeof((args)[0])); skip++)

static void release_bytes(void *p) { mxl_bytes_free(p); }
static void release_key(void *p) { mxl_signing_key_free(p); }
static void release_resident(void *p) { mxl_resident_free(p); }
static void release_response(void *p) { mxl_response_free(p); }

static void describe(char *buf, size_t size, const char *fn,
                     const arg *args, int skip)
{
    snprintf(buf, size, "%s(%s%s)", fn, skip < 0 ? "" : args[skip].name,
             skip < 0 ? "all valid" : " NULL");
}

/*
 * Judges one call. `error_at` and `out_at` are the indices of the
 * out_error and output arguments (-1 when there is none); `error` and `out`
 * are what they hold after the call.
 */
static void verdict(const char *fn, const arg *args, int skip, mxl_result rc,
                    int error_at, mxl_error *error, int out_at, void *out,
                    void (*release)(void *))
{
    char call[160];
    int succeed = skip < 0 || args[skip].optional;

    describe(call, sizeof call, fn, args, skip);
    checks++;
    if (succeed && rc != MXL_RESULT_OK) {
        fail("%s: %s, expected MXL_RESULT_OK (%s)", call,
             mxl_result_errcode(rc),
             error != NULL && error != BOGUS(mxl_error)
                 ? mxl_error_message(error)
                 : "");
    } else if (!succeed && rc != MXL_RESULT_NULL_ARGUMENT) {
        fail("%s: result %s, expected MXL_RESULT_NULL_ARGUMENT%s", call,
             rc == MXL_RESULT_OK ? "MXL_RESULT_OK" : mxl_result_errcode(rc),
             "");
    }

    if (error_at >= 0 && skip != error_at) {
        if (error == BOGUS(mxl_error)) {
            fail("%s: *out_error was not cleared%s%s", call, "", "");
        } else if (rc == MXL_RESULT_OK && error != NULL) {
            fail("%s: an error on success%s%s", call, "", "");
        } else if (rc != MXL_RESULT_OK && error == NULL) {
            fail("%s: no error object%s%s", call, "", "");
        } else if (rc != MXL_RESULT_OK) {
            const char *message = mxl_error_message(error);
            size_t len = skip >= 0 ? strlen(args[skip].name) : 0;

            if (mxl_error_code(error) != rc) {
                fail("%s: the error's code differs from the result%s%s",
                     call, "", "");
            }
            if (!succeed
                && (strncmp(message, args[skip].name, len) != 0
                    || strstr(message, "NULL") == NULL)) {
                fail("%s: message \"%s\" does not name the argument%s", call,
                     message, "");
            }
        }
        if (error != BOGUS(mxl_error)) {
            mxl_error_free(error);
        }
    }

    if (out_at >= 0 && skip != out_at) {
        if (out == BOGUS(void)) {
            if (rc == MXL_RESULT_OK) {
                fail("%s: succeeded without setting its output%s%s", call, "",
                     "");
            } else {
                fail("%s: its output was not set to NULL%s%s", call, "", "");
            }
        } else if (rc == MXL_RESULT_OK) {
            if (out == NULL) {
                fail("%s: succeeded with a NULL output%s%s", call, "", "");
            }
            release(out);
        } else if (out != NULL) {
            fail("%s: output set on failure%s%s", call, "", "");
            release(out);
        }
    }
}

/* ---- Fixtures ---------------------------------------------------------- */

static const uint8_t seed[32] = {
    0x60, 0x90, 0xc1, 0x03, 0xd5, 0xe7, 0xaf, 0x6b, 0x15, 0xa9, 0x70,
    0xfd, 0x56, 0x3e, 0xd7, 0x55, 0x49, 0xe6, 0x15, 0x97, 0x19, 0xae,
    0x5c, 0x3c, 0x31, 0xde, 0xe4, 0x31, 0x6f, 0xb7, 0x5c, 0x0d,
};

static const char event[] =
    "{\"auth_events\":[],\"content\":{\"membership\":\"join\"},\"depth\":1,"
    "\"origin_server_ts\":1,\"prev_events\":[],"
    "\"room_id\":\"!r:remote.example\",\"sender\":\"@u:remote.example\","
    "\"state_key\":\"@u:remote.example\",\"type\":\"m.room.member\"}";

static const char create_v12[] =
    "{\"auth_events\":[],\"content\":{\"room_version\":\"12\"},\"depth\":1,"
    "\"origin_server_ts\":1,\"prev_events\":[],"
    "\"sender\":\"@u:remote.example\",\"state_key\":\"\","
    "\"type\":\"m.room.create\"}";

static const char template_json[] =
    "{\"room_version\":\"10\",\"event\":{\"auth_events\":[\"$a\"],"
    "\"content\":{\"membership\":\"leave\"},\"depth\":3,"
    "\"origin\":\"resident.example\",\"origin_server_ts\":1,"
    "\"prev_events\":[\"$p\"],\"room_id\":\"!r:resident.example\","
    "\"sender\":\"@u:remote.example\",\"state_key\":\"@u:remote.example\","
    "\"type\":\"m.room.member\"}}";

static const char plain_json[] = "{\"a\":1}";
static const char extra_servers[] = "[\"resident.example\"]";

static mxl_signing_key *key;
static char *signed_event;   /* `event` signed by remote.example */
static char *signed_json;    /* `plain_json` signed by remote.example */
static char keys_json[128];  /* {"ed25519:1": public key} */
static char keys_by_server[160];
static char old_keys[160];   /* {"ed25519:0": {"key", "expired_ts"}} */
static char *auth_header;    /* X-Matrix for GET /x to resident.example */
static char *key_document;   /* remote.example's server key document */

static char *text_of(mxl_bytes *bytes)
{
    size_t len = mxl_bytes_len(bytes);
    char *copy = malloc(len + 1);

    memcpy(copy, mxl_bytes_data(bytes), len);
    copy[len] = '\0';
    mxl_bytes_free(bytes);
    return copy;
}

static int setup(void)
{
    mxl_bytes *out = NULL;

    if (mxl_signing_key_from_seed(seed, sizeof seed, "ed25519:1", &key, NULL)
        != MXL_RESULT_OK) {
        return 0;
    }
    if (mxl_signing_key_public_key(key, &out, NULL) != MXL_RESULT_OK) {
        return 0;
    }
    snprintf(keys_json, sizeof keys_json, "{\"ed25519:1\":\"%s\"}",
             (const char *)mxl_bytes_data(out));
    snprintf(keys_by_server, sizeof keys_by_server,
             "{\"remote.example\":%s}", keys_json);
    snprintf(old_keys, sizeof old_keys,
             "{\"ed25519:0\":{\"key\":\"%s\",\"expired_ts\":1}}",
             (const char *)mxl_bytes_data(out));
    mxl_bytes_free(out);

    if (mxl_sign_event(U8(event), strlen(event), "10", "remote.example", key,
                       &out, NULL)
        != MXL_RESULT_OK) {
        return 0;
    }
    signed_event = text_of(out);
    if (mxl_signing_key_sign_json(key, U8(plain_json), strlen(plain_json),
                                  "remote.example", &out, NULL)
        != MXL_RESULT_OK) {
        return 0;
    }
    signed_json = text_of(out);
    if (mxl_xmatrix_authorization(key, "remote.example", "resident.example",
                                  "PUT", "/x", U8(plain_json),
                                  strlen(plain_json), &out, NULL)
        != MXL_RESULT_OK) {
        return 0;
    }
    auth_header = text_of(out);
    if (mxl_server_key_document(key, "remote.example", INT64_C(4000000000000),
                                NULL, 0, &out, NULL)
        != MXL_RESULT_OK) {
        return 0;
    }
    key_document = text_of(out);
    return 1;
}

static void teardown(void)
{
    mxl_signing_key_free(key);
    free(signed_event);
    free(signed_json);
    free(auth_header);
    free(key_document);
}

/* ---- Version, result codes, errors, bytes ------------------------------ */

static void test_plain_accessors(void)
{
    uint8_t out_seed[32];
    uint8_t untouched[32];
    size_t len = 7;
    const char *reason = "not cleared";

    check(mxl_version() != NULL && strcmp(mxl_version(), MXL_VERSION) == 0,
          "mxl_version() is MXL_VERSION");
    check(mxl_abi_version() == MXL_ABI_VERSION, "mxl_abi_version()");
    check(mxl_ed25519_backend() != NULL, "mxl_ed25519_backend() is never NULL");
    check(mxl_result_http_status(9999) == 500,
          "mxl_result_http_status(unknown) is 500");
    check(strcmp(mxl_result_errcode(9999), "M_UNKNOWN") == 0,
          "mxl_result_errcode(unknown) is M_UNKNOWN");

    check(mxl_error_code(NULL) == MXL_RESULT_NULL_ARGUMENT,
          "mxl_error_code(NULL) is MXL_RESULT_NULL_ARGUMENT");
    check(mxl_error_http_status(NULL) == 500,
          "mxl_error_http_status(NULL) is 500");
    check(strcmp(mxl_error_errcode(NULL), "M_UNKNOWN") == 0,
          "mxl_error_errcode(NULL) is M_UNKNOWN");
    check(strcmp(mxl_error_message(NULL), "") == 0,
          "mxl_error_message(NULL) is empty");
    mxl_error_free(NULL);

    check(mxl_bytes_data(NULL) == NULL, "mxl_bytes_data(NULL) is NULL");
    check(mxl_bytes_len(NULL) == 0, "mxl_bytes_len(NULL) is 0");
    mxl_bytes_free(NULL);

    check(mxl_signing_key_key_id(NULL) == NULL,
          "mxl_signing_key_key_id(NULL) is NULL");
    check(strcmp(mxl_signing_key_key_id(key), "ed25519:1") == 0,
          "mxl_signing_key_key_id(key)");
    mxl_signing_key_free(NULL);

    /* mxl_signing_key_seed has no out_error: only its result tells. */
    memset(out_seed, 0xaa, sizeof out_seed);
    memset(untouched, 0xaa, sizeof untouched);
    check(mxl_signing_key_seed(NULL, out_seed) == MXL_RESULT_NULL_ARGUMENT,
          "mxl_signing_key_seed(key NULL) is MXL_RESULT_NULL_ARGUMENT");
    check(memcmp(out_seed, untouched, sizeof out_seed) == 0,
          "mxl_signing_key_seed(key NULL) writes nothing");
    check(mxl_signing_key_seed(key, NULL) == MXL_RESULT_NULL_ARGUMENT,
          "mxl_signing_key_seed(out_seed NULL) is MXL_RESULT_NULL_ARGUMENT");
    check(mxl_signing_key_seed(key, out_seed) == MXL_RESULT_OK
              && memcmp(out_seed, seed, sizeof seed) == 0,
          "mxl_signing_key_seed(all valid)");

    check(mxl_response_status(NULL) == 0, "mxl_response_status(NULL) is 0");
    check(mxl_response_code(NULL) == MXL_RESULT_NULL_ARGUMENT,
          "mxl_response_code(NULL) is MXL_RESULT_NULL_ARGUMENT");
    check(strcmp(mxl_response_errcode(NULL), "") == 0,
          "mxl_response_errcode(NULL) is empty");
    check(strcmp(mxl_response_message(NULL), "") == 0,
          "mxl_response_message(NULL) is empty");
    check(mxl_response_body(NULL, &len) == NULL && len == 0,
          "mxl_response_body(NULL, &len) is NULL with len 0");
    check(mxl_response_body(NULL, NULL) == NULL,
          "mxl_response_body(NULL, NULL) is NULL");
    check(!mxl_response_accepted(NULL),
          "mxl_response_accepted(NULL) is false");
    check(strcmp(mxl_response_event_id(NULL), "") == 0,
          "mxl_response_event_id(NULL) is empty");
    mxl_response_free(NULL);
    mxl_resident_free(NULL);

    check(mxl_plugin_get(MXL_ABI_VERSION, NULL) != NULL,
          "mxl_plugin_get(MXL_ABI_VERSION, NULL) gives the table");
    check(mxl_plugin_get(MXL_ABI_VERSION, &reason) != NULL && reason == NULL,
          "mxl_plugin_get clears *out_reason on success");
    check(mxl_plugin_get(MXL_ABI_VERSION + 1, NULL) == NULL,
          "mxl_plugin_get(another version, NULL) is NULL");
    check(mxl_plugin_get(MXL_ABI_VERSION + 1, &reason) == NULL
              && reason != NULL && reason[0] != '\0',
          "mxl_plugin_get(another version) gives a reason");
}

/* ---- Canonical JSON, hashes, redaction, IDs ---------------------------- */

static void test_json_functions(void)
{
    static const arg with_version[] = {{"json", 0},
                                       {"room_version", 0},
                                       {"out_bytes", 0},
                                       {"out_error", 1}};
    static const arg canonical[] = {{"json", 0},
                                    {"room_version", 1},
                                    {"out_bytes", 0},
                                    {"out_error", 1}};
    static const arg without_version[] = {
        {"json", 0}, {"out_bytes", 0}, {"out_error", 1}};
    size_t len = strlen(signed_event);
    mxl_bytes *out;
    mxl_error *error;
    mxl_result rc;
    int skip;

    FOR_EACH_NULL(canonical) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_canonical_json(N(0, U8(signed_event)), len, N(1, "10"),
                                N(2, &out), N(3, &error));
        verdict("mxl_canonical_json", canonical, skip, rc, 3, error, 2, out,
                release_bytes);
    }
    out = BOGUS(mxl_bytes);
    check(mxl_canonical_json(NULL, 0, NULL, &out, NULL)
                  == MXL_RESULT_BAD_JSON
              && out == NULL,
          "mxl_canonical_json(NULL, 0): an empty text, which is not JSON");

    FOR_EACH_NULL(without_version) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_content_hash(N(0, U8(signed_event)), len, N(1, &out),
                              N(2, &error));
        verdict("mxl_content_hash", without_version, skip, rc, 2, error, 1,
                out, release_bytes);
    }
    FOR_EACH_NULL(with_version) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_reference_hash(N(0, U8(signed_event)), len, N(1, "10"),
                                N(2, &out), N(3, &error));
        verdict("mxl_reference_hash", with_version, skip, rc, 3, error, 2,
                out, release_bytes);
    }
    FOR_EACH_NULL(with_version) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_event_id(N(0, U8(signed_event)), len, N(1, "10"), N(2, &out),
                          N(3, &error));
        verdict("mxl_event_id", with_version, skip, rc, 3, error, 2, out,
                release_bytes);
    }
    FOR_EACH_NULL(without_version) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_room_id_from_create_event(N(0, U8(create_v12)),
                                           strlen(create_v12), N(1, &out),
                                           N(2, &error));
        verdict("mxl_room_id_from_create_event", without_version, skip, rc, 2,
                error, 1, out, release_bytes);
    }
    FOR_EACH_NULL(with_version) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_redact(N(0, U8(signed_event)), len, N(1, "10"), N(2, &out),
                        N(3, &error));
        verdict("mxl_redact", with_version, skip, rc, 3, error, 2, out,
                release_bytes);
    }
}

/* ---- Signing keys and signatures --------------------------------------- */

static void test_key_functions(void)
{
    static const arg from_seed[] = {
        {"seed", 0}, {"key_id", 0}, {"out_key", 0}, {"out_error", 1}};
    static const arg generate[] = {
        {"key_id", 0}, {"out_key", 0}, {"out_error", 1}};
    static const arg public_key[] = {
        {"key", 0}, {"out_bytes", 0}, {"out_error", 1}};
    static const arg sign_json[] = {{"key", 0},
                                    {"json", 0},
                                    {"server_name", 0},
                                    {"out_bytes", 0},
                                    {"out_error", 1}};
    static const arg verify_json[] = {{"json", 0},
                                      {"server_name", 0},
                                      {"keys_json", 0},
                                      {"out_error", 1}};
    static const arg sign_event[] = {{"json", 0},
                                     {"room_version", 0},
                                     {"server_name", 0},
                                     {"key", 0},
                                     {"out_bytes", 0},
                                     {"out_error", 1}};
    static const arg verify_event[] = {{"json", 0},
                                       {"room_version", 0},
                                       {"keys_json", 0},
                                       {"out_bytes", 0},
                                       {"out_error", 1}};
    mxl_signing_key *new_key;
    mxl_bytes *out;
    mxl_error *error;
    mxl_result rc;
    int skip;

    FOR_EACH_NULL(from_seed) {
        new_key = BOGUS(mxl_signing_key);
        error = BOGUS(mxl_error);
        rc = mxl_signing_key_from_seed(N(0, seed), sizeof seed,
                                       N(1, "ed25519:1"), N(2, &new_key),
                                       N(3, &error));
        verdict("mxl_signing_key_from_seed", from_seed, skip, rc, 3, error, 2,
                new_key, release_key);
    }
    FOR_EACH_NULL(generate) {
        new_key = BOGUS(mxl_signing_key);
        error = BOGUS(mxl_error);
        rc = mxl_signing_key_generate(N(0, "ed25519:2"), N(1, &new_key),
                                      N(2, &error));
        verdict("mxl_signing_key_generate", generate, skip, rc, 2, error, 1,
                new_key, release_key);
    }
    FOR_EACH_NULL(public_key) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_signing_key_public_key(N(0, key), N(1, &out), N(2, &error));
        verdict("mxl_signing_key_public_key", public_key, skip, rc, 2, error,
                1, out, release_bytes);
    }
    FOR_EACH_NULL(sign_json) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_signing_key_sign_json(N(0, key), N(1, U8(plain_json)),
                                       strlen(plain_json),
                                       N(2, "remote.example"), N(3, &out),
                                       N(4, &error));
        verdict("mxl_signing_key_sign_json", sign_json, skip, rc, 4, error, 3,
                out, release_bytes);
    }
    FOR_EACH_NULL(verify_json) {
        error = BOGUS(mxl_error);
        rc = mxl_verify_json(N(0, U8(signed_json)), strlen(signed_json),
                             N(1, "remote.example"), N(2, U8(keys_json)),
                             strlen(keys_json), N(3, &error));
        verdict("mxl_verify_json", verify_json, skip, rc, 3, error, -1, NULL,
                NULL);
    }
    FOR_EACH_NULL(sign_event) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_sign_event(N(0, U8(event)), strlen(event), N(1, "10"),
                            N(2, "remote.example"), N(3, key), N(4, &out),
                            N(5, &error));
        verdict("mxl_sign_event", sign_event, skip, rc, 5, error, 4, out,
                release_bytes);
    }
    FOR_EACH_NULL(verify_event) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_verify_event(N(0, U8(signed_event)), strlen(signed_event),
                              N(1, "10"), N(2, U8(keys_by_server)),
                              strlen(keys_by_server), N(3, &out),
                              N(4, &error));
        verdict("mxl_verify_event", verify_event, skip, rc, 4, error, 3, out,
                release_bytes);
    }
}

/* ---- X-Matrix and server key documents --------------------------------- */

static void test_request_functions(void)
{
    static const arg authorization[] = {
        {"key", 0},    {"origin", 0},       {"destination", 0},
        {"method", 0}, {"uri", 0},          {"content_json", 0},
        {"out_bytes", 0}, {"out_error", 1}};
    static const arg parse[] = {
        {"header", 0}, {"out_bytes", 0}, {"out_error", 1}};
    static const arg verify[] = {
        {"header", 0},       {"method", 0},          {"uri", 0},
        {"content_json", 0}, {"our_server_name", 0}, {"keys_json", 0},
        {"out_bytes", 0},    {"out_error", 1}};
    static const arg document[] = {{"key", 0},
                                   {"server_name", 0},
                                   {"old_keys_json", 0},
                                   {"out_bytes", 0},
                                   {"out_error", 1}};
    static const arg verify_document[] = {{"json", 0},
                                          {"requested_server", 0},
                                          {"out_bytes", 0},
                                          {"out_error", 1}};
    size_t plain_len = strlen(plain_json);
    mxl_bytes *out;
    mxl_error *error;
    mxl_result rc;
    int skip;

    FOR_EACH_NULL(authorization) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_xmatrix_authorization(
            N(0, key), N(1, "remote.example"), N(2, "resident.example"),
            N(3, "PUT"), N(4, "/x"), N(5, U8(plain_json)), plain_len,
            N(6, &out), N(7, &error));
        verdict("mxl_xmatrix_authorization", authorization, skip, rc, 7,
                error, 6, out, release_bytes);
    }
    out = NULL;
    rc = mxl_xmatrix_authorization(key, "remote.example", "resident.example",
                                   "GET", "/x", NULL, 0, &out, NULL);
    check(rc == MXL_RESULT_OK, "mxl_xmatrix_authorization(content (NULL, 0))");
    mxl_bytes_free(out);

    FOR_EACH_NULL(parse) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_xmatrix_parse(N(0, auth_header), N(1, &out), N(2, &error));
        verdict("mxl_xmatrix_parse", parse, skip, rc, 2, error, 1, out,
                release_bytes);
    }
    FOR_EACH_NULL(verify) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_xmatrix_verify(N(0, auth_header), N(1, "PUT"), N(2, "/x"),
                                N(3, U8(plain_json)), plain_len,
                                N(4, "resident.example"), N(5, U8(keys_json)),
                                strlen(keys_json), N(6, &out), N(7, &error));
        verdict("mxl_xmatrix_verify", verify, skip, rc, 7, error, 6, out,
                release_bytes);
    }
    FOR_EACH_NULL(document) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_server_key_document(
            N(0, key), N(1, "remote.example"), INT64_C(4000000000000),
            N(2, U8(old_keys)), strlen(old_keys), N(3, &out), N(4, &error));
        verdict("mxl_server_key_document", document, skip, rc, 4, error, 3,
                out, release_bytes);
    }
    out = NULL;
    rc = mxl_server_key_document(key, "remote.example", 1, NULL, 0, &out,
                                 NULL);
    check(rc == MXL_RESULT_OK,
          "mxl_server_key_document(old_keys_json (NULL, 0))");
    mxl_bytes_free(out);

    FOR_EACH_NULL(verify_document) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_verify_server_key_document(
            N(0, U8(key_document)), strlen(key_document),
            N(1, "remote.example"), N(2, &out), N(3, &error));
        verdict("mxl_verify_server_key_document", verify_document, skip, rc, 3,
                error, 2, out, release_bytes);
    }
}

/* ---- The leaving side -------------------------------------------------- */

static int transport_calls;

/* Answers with a body (NULL, 5) and a failure message (NULL, 5): the
 * library must ignore both, and then count the request as unanswered. Also
 * tries a NULL response. */
static int32_t bad_transport(void *userdata, const mxl_http_request *request,
                             mxl_http_response *response)
{
    (void)userdata;
    (void)request;
    transport_calls++;
    mxl_http_response_set(NULL, 200, U8("{}"), 2);
    mxl_http_response_set(response, 200, NULL, 5);
    mxl_http_response_fail(NULL, "refused", 7);
    mxl_http_response_fail(response, NULL, 5);
    return 0;
}

static void test_leaving_functions(void)
{
    static const arg complete[] = {{"params", 0},
                                   {"params.response", 0},
                                   {"params.room_id", 0},
                                   {"params.user_id", 0},
                                   {"params.server_name", 0},
                                   {"params.key", 0},
                                   {"params.reason", 1},
                                   {"params.event_id", 1},
                                   {"out_json", 0},
                                   {"out_error", 1}};
    static const arg leave[] = {{"params", 0},
                                {"params.room_id", 0},
                                {"params.user_id", 0},
                                {"params.server_name", 0},
                                {"params.key", 0},
                                {"params.membership_event", 0},
                                {"params.room_version", 1},
                                {"params.extra_servers", 0},
                                {"params.reason", 1},
                                {"transport", 0},
                                {"transport.send", 0},
                                {"out_json", 0},
                                {"out_error", 1}};
    mxl_template_params tp;
    mxl_leave_params lp;
    mxl_transport transport;
    mxl_bytes *out;
    mxl_error *error;
    mxl_result rc;
    int skip;

    FOR_EACH_NULL(complete) {
        memset(&tp, 0, sizeof tp);
        tp.response = N(1, U8(template_json));
        tp.response_len = strlen(template_json);
        tp.room_id = N(2, "!r:resident.example");
        tp.user_id = N(3, "@u:remote.example");
        tp.server_name = N(4, "remote.example");
        tp.key = N(5, key);
        tp.reason = N(6, "bye");
        tp.event_id = N(7, "$e:remote.example");
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_complete_leave_template(N(0, &tp), N(8, &out), N(9, &error));
        verdict("mxl_complete_leave_template", complete, skip, rc, 9, error, 8,
                out, release_bytes);
    }

    FOR_EACH_NULL(leave) {
        memset(&lp, 0, sizeof lp);
        lp.room_id = N(1, "!r:resident.example");
        lp.user_id = N(2, "@u:remote.example");
        lp.server_name = N(3, "remote.example");
        lp.key = N(4, key);
        lp.membership_event = N(5, U8(signed_event));
        lp.membership_event_len = strlen(signed_event);
        lp.room_version = N(6, "10");
        lp.extra_servers = N(7, U8(extra_servers));
        lp.extra_servers_len = strlen(extra_servers);
        lp.now_ms = 1;
        lp.reason = N(8, "bye");
        memset(&transport, 0, sizeof transport);
        transport.send = skip == 10 ? NULL : bad_transport;
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_leave_room(N(0, &lp), N(9, &transport), N(11, &out),
                            N(12, &error));
        verdict("mxl_leave_room", leave, skip, rc, 12, error, 11, out,
                release_bytes);
    }
    check(transport_calls > 0, "mxl_leave_room called the transport");

    /* (NULL, 0) slices are absent optional inputs. */
    memset(&lp, 0, sizeof lp);
    lp.room_id = "!r:resident.example";
    lp.user_id = "@u:remote.example";
    lp.server_name = "remote.example";
    lp.key = key;
    transport.send = bad_transport;
    out = NULL;
    rc = mxl_leave_room(&lp, &transport, &out, NULL);
    check(rc == MXL_RESULT_OK && out != NULL,
          "mxl_leave_room(membership_event and extra_servers (NULL, 0))");
    mxl_bytes_free(out);
}

/* ---- The resident side ------------------------------------------------- */

static int freed;
static int bad_answers;

static void count_free(void *userdata)
{
    (void)userdata;
    freed++;
}

/* Answers (NULL, 5), which mxl_out_set ignores: the library sees OK without
 * an answer. Also tries a NULL target. */
static int32_t bad_lookup(void *userdata, const mxl_lookup *query,
                          mxl_out *out)
{
    (void)userdata;
    (void)query;
    bad_answers++;
    mxl_out_set(NULL, U8("10"), 2);
    mxl_out_set(out, NULL, 5);
    return MXL_CB_OK;
}

static void test_resident_functions(void)
{
    static const arg create[] = {{"config", 0},
                                 {"config.server_name", 0},
                                 {"callbacks", 0},
                                 {"out_resident", 0},
                                 {"out_error", 1}};
    static const arg make_leave[] = {{"resident", 0},
                                     {"room_id", 0},
                                     {"user_id", 0},
                                     {"origin", 0},
                                     {"out_response", 0},
                                     {"out_error", 1}};
    static const arg send_leave[] = {{"resident", 0},
                                     {"params", 0},
                                     {"params.room_id", 0},
                                     {"params.event_id", 0},
                                     {"params.body", 0},
                                     {"params.origin", 0},
                                     {"out_response", 0},
                                     {"out_error", 1}};
    static const arg response_json[] = {
        {"response", 0}, {"out_json", 0}, {"out_error", 1}};
    mxl_resident_config config;
    mxl_resident_callbacks callbacks;
    mxl_send_leave_params sp;
    mxl_resident *resident;
    mxl_response *response;
    mxl_bytes *out;
    mxl_error *error;
    mxl_result rc;
    size_t len;
    int skip;
    int before;

    memset(&callbacks, 0, sizeof callbacks);
    callbacks.userdata_free = count_free;

    FOR_EACH_NULL(create) {
        memset(&config, 0, sizeof config);
        config.server_name = N(1, "resident.example");
        resident = BOGUS(mxl_resident);
        error = BOGUS(mxl_error);
        before = freed;
        rc = mxl_resident_new(N(0, &config), N(2, &callbacks),
                              N(3, &resident), N(4, &error));
        verdict("mxl_resident_new", create, skip, rc, 4, error, 3, resident,
                release_resident);
        /* userdata_free runs once: on failure if it was given, else on
         * mxl_resident_free (inside verdict). */
        check(freed == before + (skip == 2 ? 0 : 1),
              "mxl_resident_new: userdata_free runs exactly once");
    }

    /* A context without lookup callbacks answers 500, still a response. */
    memset(&config, 0, sizeof config);
    config.server_name = "resident.example";
    resident = NULL;
    if (mxl_resident_new(&config, &callbacks, &resident, NULL)
        != MXL_RESULT_OK) {
        check(0, "mxl_resident_new(all valid)");
        return;
    }

    FOR_EACH_NULL(make_leave) {
        response = BOGUS(mxl_response);
        error = BOGUS(mxl_error);
        rc = mxl_resident_make_leave(
            N(0, resident), N(1, "!r:resident.example"),
            N(2, "@u:remote.example"), N(3, "remote.example"),
            N(4, &response), N(5, &error));
        verdict("mxl_resident_make_leave", make_leave, skip, rc, 5, error, 4,
                response, release_response);
    }
    FOR_EACH_NULL(send_leave) {
        memset(&sp, 0, sizeof sp);
        sp.room_id = N(2, "!r:resident.example");
        sp.event_id = N(3, "$e");
        sp.body = N(4, U8(signed_event));
        sp.body_len = strlen(signed_event);
        sp.origin = N(5, "remote.example");
        sp.api_version = 2;
        response = BOGUS(mxl_response);
        error = BOGUS(mxl_error);
        rc = mxl_resident_send_leave(N(0, resident), N(1, &sp),
                                     N(6, &response), N(7, &error));
        verdict("mxl_resident_send_leave", send_leave, skip, rc, 7, error, 6,
                response, release_response);
    }

    /* The response accessors on a real response, with NULL outputs. */
    response = NULL;
    rc = mxl_resident_make_leave(resident, "!r:resident.example",
                                 "@u:remote.example", "remote.example",
                                 &response, NULL);
    check(rc == MXL_RESULT_OK && mxl_response_status(response) == 500,
          "make_leave without callbacks is answered 500");
    check(mxl_response_body(response, NULL) != NULL,
          "mxl_response_body(response, NULL) still returns the body");
    check(mxl_response_code(response) == MXL_RESULT_HOST_FAILURE,
          "mxl_response_code of a 500");
    check(strcmp(mxl_response_errcode(response), "M_UNKNOWN") == 0,
          "mxl_response_errcode of a 500");
    check(mxl_response_message(response)[0] != '\0',
          "mxl_response_message of a 500");
    check(!mxl_response_accepted(response), "mxl_response_accepted of a 500");
    check(strcmp(mxl_response_event_id(response), "") == 0,
          "mxl_response_event_id of a 500");
    len = 0;
    check(mxl_response_body(response, &len) != NULL && len > 0,
          "mxl_response_body of a 500");
    FOR_EACH_NULL(response_json) {
        out = BOGUS(mxl_bytes);
        error = BOGUS(mxl_error);
        rc = mxl_response_json(N(0, response), N(1, &out), N(2, &error));
        verdict("mxl_response_json", response_json, skip, rc, 2, error, 1,
                out, release_bytes);
    }
    mxl_response_free(response);
    mxl_resident_free(resident);

    /* mxl_out_set ignores a NULL target and a (NULL, 5) answer. */
    mxl_out_set(NULL, U8("10"), 2);
    callbacks.room_version = bad_lookup;
    resident = NULL;
    response = NULL;
    rc = mxl_resident_new(&config, &callbacks, &resident, NULL);
    check(rc == MXL_RESULT_OK, "mxl_resident_new with a bad lookup");
    rc = mxl_resident_make_leave(resident, "!r:resident.example",
                                 "@u:remote.example", "remote.example",
                                 &response, NULL);
    check(rc == MXL_RESULT_OK && bad_answers == 1
              && mxl_response_status(response) == 500
              && strcmp(mxl_response_errcode(response), "M_UNKNOWN") == 0,
          "mxl_out_set(out, NULL, 5) is no answer: 500 M_UNKNOWN");
    mxl_response_free(response);
    mxl_resident_free(resident);
    mxl_http_response_set(NULL, 200, U8("{}"), 2);
    mxl_http_response_fail(NULL, "refused", 7);
}

int main(void)
{
    if (!setup()) {
        fprintf(stderr, "FAIL: could not make the fixtures\n");
        return 1;
    }
    test_plain_accessors();
    test_json_functions();
    test_key_functions();
    test_request_functions();
    test_leaving_functions();
    test_resident_functions();
    teardown();

    if (failures == 0) {
        printf("null_args: ok (%d checks)\n", checks);
    } else {
        printf("null_args: %d of %d checks failed\n", failures, checks);
    }
    return failures == 0 ? 0 : 1;
}
