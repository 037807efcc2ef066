/*
 * Compiles against the committed header, included twice, as C11 and as C++, and
 * calls a few exports through the shared and the static library.
 */
#include "matrix_leave.h"
#include "matrix_leave.h" /* the include guard must make this harmless */

#include <stdio.h>
#include <string.h>

static int failures = 0;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

static int bytes_equal(const mxl_bytes *bytes, const char *expected)
{
    size_t len = strlen(expected);
    return mxl_bytes_len(bytes) == len
        && memcmp(mxl_bytes_data(bytes), expected, len) == 0;
}

int main(void)
{
    static const char input[] = "{\"b\": 1, \"a\": [true, null]}";
    static const char bad[] = "{\"a\": 1.5}";
    mxl_bytes *out = NULL;
    mxl_error *error = NULL;
    mxl_result rc;

    check(strcmp(mxl_version(), MXL_VERSION) == 0, "mxl_version matches MXL_VERSION");
    check(mxl_abi_version() == MXL_ABI_VERSION, "mxl_abi_version matches");
    check(strcmp(mxl_ed25519_backend(), "avx512ifma") == 0
              || strcmp(mxl_ed25519_backend(), "avx2") == 0
              || strcmp(mxl_ed25519_backend(), "serial") == 0,
          "mxl_ed25519_backend names a backend");

    rc = mxl_canonical_json((const uint8_t *)input, sizeof input - 1, NULL, &out,
                            &error);
    check(rc == MXL_RESULT_OK, "canonical_json succeeds");
    check(error == NULL, "no error on success");
    check(out != NULL && bytes_equal(out, "{\"a\":[true,null],\"b\":1}"),
          "canonical_json output");
    mxl_bytes_free(out);
    out = NULL;

    rc = mxl_canonical_json((const uint8_t *)bad, sizeof bad - 1, NULL, &out, &error);
    check(rc == MXL_RESULT_BAD_JSON, "a float is refused by the strict rules");
    check(out == NULL, "no output on failure");
    check(error != NULL && mxl_error_code(error) == MXL_RESULT_BAD_JSON, "error code");
    check(error != NULL && mxl_error_http_status(error) == 400, "error status");
    check(error != NULL && strcmp(mxl_error_errcode(error), "M_BAD_JSON") == 0,
          "error errcode");
    check(error != NULL && strstr(mxl_error_message(error), "float") != NULL,
          "error message");
    mxl_error_free(error);
    error = NULL;

    rc = mxl_canonical_json((const uint8_t *)bad, sizeof bad - 1, "5", &out, NULL);
    check(rc == MXL_RESULT_OK && bytes_equal(out, "{\"a\":1.5}"),
          "room version 5 allows floats");
    mxl_bytes_free(out);

    check(mxl_result_http_status(MXL_RESULT_UNAUTHORIZED) == 401, "status of a code");
    check(strcmp(mxl_result_errcode(MXL_RESULT_FORBIDDEN), "M_FORBIDDEN") == 0,
          "errcode of a code");

    mxl_bytes_free(NULL);
    mxl_error_free(NULL);
    mxl_signing_key_free(NULL);

    if (failures == 0) {
        printf("header_twice: ok (matrix-leave %s)\n", mxl_version());
    }
    return failures == 0 ? 0 : 1;
}
