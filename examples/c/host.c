/*
 * A C homeserver that links matrix-leave (shared or static) and answers
 * make_leave and send_leave for the rooms it keeps in memory (room.c).
 *
 * A linking host calls the mxl_* functions directly. This one puts them in
 * an mxl_plugin_v1 table first, only so that it shares room.c with
 * plugin_host.c, which gets the same table through dlopen. Filling the table
 * field by field also makes the compiler check every function of the header
 * against the table's field of the same name.
 *
 * Prints one line per request: its name, the HTTP status and the errcode.
 */
#include "matrix_leave.h"
#include "room.h"

#include <stdio.h>

static const mxl_plugin_v1 linked = {
    .size = sizeof(mxl_plugin_v1),
    .version = mxl_version,
    .abi_version = mxl_abi_version,
    .result_http_status = mxl_result_http_status,
    .result_errcode = mxl_result_errcode,
    .error_code = mxl_error_code,
    .error_http_status = mxl_error_http_status,
    .error_errcode = mxl_error_errcode,
    .error_message = mxl_error_message,
    .error_free = mxl_error_free,
    .bytes_data = mxl_bytes_data,
    .bytes_len = mxl_bytes_len,
    .bytes_free = mxl_bytes_free,
    .canonical_json = mxl_canonical_json,
    .content_hash = mxl_content_hash,
    .reference_hash = mxl_reference_hash,
    .event_id = mxl_event_id,
    .room_id_from_create_event = mxl_room_id_from_create_event,
    .redact = mxl_redact,
    .signing_key_from_seed = mxl_signing_key_from_seed,
    .signing_key_generate = mxl_signing_key_generate,
    .signing_key_free = mxl_signing_key_free,
    .signing_key_key_id = mxl_signing_key_key_id,
    .signing_key_public_key = mxl_signing_key_public_key,
    .signing_key_seed = mxl_signing_key_seed,
    .signing_key_sign_json = mxl_signing_key_sign_json,
    .verify_json = mxl_verify_json,
    .sign_event = mxl_sign_event,
    .verify_event = mxl_verify_event,
    .xmatrix_authorization = mxl_xmatrix_authorization,
    .xmatrix_parse = mxl_xmatrix_parse,
    .xmatrix_verify = mxl_xmatrix_verify,
    .server_key_document = mxl_server_key_document,
    .verify_server_key_document = mxl_verify_server_key_document,
    .complete_leave_template = mxl_complete_leave_template,
    .http_response_set = mxl_http_response_set,
    .http_response_fail = mxl_http_response_fail,
    .leave_room = mxl_leave_room,
    .out_set = mxl_out_set,
    .resident_new = mxl_resident_new,
    .resident_free = mxl_resident_free,
    .resident_make_leave = mxl_resident_make_leave,
    .resident_send_leave = mxl_resident_send_leave,
    .response_status = mxl_response_status,
    .response_code = mxl_response_code,
    .response_errcode = mxl_response_errcode,
    .response_message = mxl_response_message,
    .response_body = mxl_response_body,
    .response_accepted = mxl_response_accepted,
    .response_event_id = mxl_response_event_id,
    .response_json = mxl_response_json,
    .response_free = mxl_response_free,
    .ed25519_backend = mxl_ed25519_backend,
};

int main(void)
{
    const mxl_plugin_v1 *library;

    /* The library must speak the ABI this program was compiled for. */
    if (mxl_abi_version() != MXL_ABI_VERSION) {
        fprintf(stderr, "host: library ABI %u, header ABI %u\n",
                (unsigned)mxl_abi_version(), (unsigned)MXL_ABI_VERSION);
        return 1;
    }

    /* The library's own table has the same size and the same functions. */
    library = mxl_plugin_get(MXL_ABI_VERSION, NULL);
    if (library == NULL || library->size != linked.size) {
        fprintf(stderr, "host: mxl_plugin_get disagrees with the header\n");
        return 1;
    }

    return room_run_requests(&linked, stdout);
}
