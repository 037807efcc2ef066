/*
 * The in-memory homeserver of the C examples (see room.h).
 *
 * The rooms are kept as PDUs, indexed by the few fields the resident
 * callbacks look events up by. Every event is made at run time with the
 * library itself: the JSON is written here, mxl_sign_event adds the content
 * hash and the sender server's signature, and mxl_event_id gives its ID.
 */
#include "room.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- Small helpers ----------------------------------------------------- */

static char *dup_span(const char *text, size_t len)
{
    char *copy = malloc(len + 1);

    if (copy != NULL) {
        memcpy(copy, text, len);
        copy[len] = '\0';
    }
    return copy;
}

/* Prints why a call failed and frees its error. */
static void print_error(const mxl_plugin_v1 *mxl, const char *what,
                        mxl_result rc, mxl_error *error)
{
    fprintf(stderr, "room: %s failed: %s: %s\n", what, mxl->result_errcode(rc),
            error != NULL ? mxl->error_message(error) : "(no error object)");
    mxl->error_free(error);
}

/* Copies an mxl_bytes into a NUL-terminated string to free(), and frees
 * the mxl_bytes. */
static char *take_bytes(const mxl_plugin_v1 *mxl, mxl_bytes *bytes,
                        size_t *out_len)
{
    size_t len = mxl->bytes_len(bytes);
    char *copy = dup_span((const char *)mxl->bytes_data(bytes), len);

    mxl->bytes_free(bytes);
    if (out_len != NULL) {
        *out_len = len;
    }
    return copy;
}

/* Appends formatted text at buf + *len; false when it does not fit. */
static bool append(char *buf, size_t size, size_t *len, const char *format,
                   ...)
{
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(buf + *len, size - *len, format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= size - *len) {
        return false;
    }
    *len += (size_t)n;
    return true;
}

static bool is_room_version(const room *r, const char *a, const char *b)
{
    return strcmp(r->version, a) == 0 || strcmp(r->version, b) == 0;
}

/* Room versions 1 and 2 carry event IDs chosen by the sender's server and
 * refer to events as [id, {"sha256": reference hash}] pairs. */
static bool has_own_event_ids(const room *r)
{
    return is_room_version(r, "1", "2");
}

/* ---- Reading JSON ------------------------------------------------------ */

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* From an opening quote to just after the closing one; NULL if unclosed. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Past one JSON value; NULL if it does not end. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;

    if (p >= end) {
        return NULL;
    }
    if (*p == '"') {
        return skip_string(p, end);
    }
    if (*p != '{' && *p != '[') {
        while (p < end && strchr(",}] \t\r\n", *p) == NULL) {
            p++;
        }
        return p;
    }
    while (p < end) {
        if (*p == '"') {
            p = skip_string(p, end);
            if (p == NULL) {
                return NULL;
            }
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if ((*p == '}' || *p == ']') && --depth == 0) {
            return p + 1;
        }
        p++;
    }
    return NULL;
}

bool room_json_member(const char *text, size_t len, const char *key,
                      const char **value, size_t *value_len)
{
    const char *end = text + len;
    const char *p = skip_space(text, end);
    size_t key_len = strlen(key);

    if (p >= end || *p != '{') {
        return false;
    }
    p = skip_space(p + 1, end);
    while (p < end && *p == '"') {
        const char *name = p + 1;
        const char *after_name = skip_string(p, end);
        const char *start;

        if (after_name == NULL) {
            return false;
        }
        p = skip_space(after_name, end);
        if (p >= end || *p != ':') {
            return false;
        }
        start = skip_space(p + 1, end);
        p = skip_value(start, end);
        if (p == NULL) {
            return false;
        }
        if ((size_t)(after_name - 1 - name) == key_len
            && memcmp(name, key, key_len) == 0) {
            *value = start;
            *value_len = (size_t)(p - start);
            return true;
        }
        p = skip_space(p, end);
        if (p < end && *p == ',') {
            p = skip_space(p + 1, end);
        }
    }
    return false;
}

/* A string member without escapes, as a new string to free(); NULL when
 * absent or not such a string. */
static char *member_string(const char *json, size_t len, const char *key)
{
    const char *value;
    size_t value_len;

    if (!room_json_member(json, len, key, &value, &value_len) || value_len < 2
        || value[0] != '"' || value[value_len - 1] != '"'
        || memchr(value, '\\', value_len) != NULL) {
        return NULL;
    }
    return dup_span(value + 1, value_len - 2);
}

/* ---- Rooms ------------------------------------------------------------- */

static void event_clear(room_event *ev)
{
    free(ev->event_id);
    free(ev->type);
    free(ev->state_key);
    free(ev->membership);
    free(ev->json);
    memset(ev, 0, sizeof *ev);
}

/* Fills `ev` with a copy of a PDU and the fields read from it. */
static bool event_init(room_event *ev, const char *event_id, const char *json,
                       size_t len, bool soft_failed)
{
    const char *content;
    const char *depth;
    size_t content_len;
    size_t depth_len;

    memset(ev, 0, sizeof *ev);
    ev->event_id = dup_span(event_id, strlen(event_id));
    ev->json = dup_span(json, len);
    ev->json_len = len;
    ev->soft_failed = soft_failed;
    if (ev->event_id == NULL || ev->json == NULL) {
        return false;
    }
    ev->type = member_string(ev->json, len, "type");
    ev->state_key = member_string(ev->json, len, "state_key");
    if (room_json_member(ev->json, len, "content", &content, &content_len)) {
        ev->membership = member_string(content, content_len, "membership");
    }
    if (room_json_member(ev->json, len, "depth", &depth, &depth_len)) {
        ev->depth = strtoll(depth, NULL, 10);
    }
    return ev->type != NULL;
}

/* Appends a PDU to a room. */
static bool room_append(room *r, const char *event_id, const char *json,
                        size_t len, bool soft_failed)
{
    room_event *ev;

    if (r->count == ROOM_MAX_EVENTS) {
        return false;
    }
    ev = &r->events[r->count];
    if (!event_init(ev, event_id, json, len, soft_failed)) {
        event_clear(ev);
        return false;
    }
    r->count++;
    return true;
}

room *room_find(room_host *host, const char *room_id)
{
    size_t i;

    for (i = 0; room_id != NULL && i < host->rooms_count; i++) {
        if (strcmp(host->rooms[i].room_id, room_id) == 0) {
            return &host->rooms[i];
        }
    }
    return NULL;
}

static const room_event *room_event_by_id(const room *r, const char *event_id)
{
    size_t i;

    for (i = 0; event_id != NULL && i < r->count; i++) {
        if (strcmp(r->events[i].event_id, event_id) == 0) {
            return &r->events[i];
        }
    }
    return NULL;
}

/* The current state event of this type and state key. */
static const room_event *room_state(const room *r, const char *type,
                                    const char *state_key)
{
    size_t i;

    if (type == NULL || state_key == NULL) {
        return NULL;
    }
    for (i = r->count; i-- > 0;) {
        const room_event *ev = &r->events[i];

        if (!ev->soft_failed && ev->state_key != NULL
            && strcmp(ev->type, type) == 0
            && strcmp(ev->state_key, state_key) == 0) {
            return ev;
        }
    }
    return NULL;
}

/* The newest event that is not soft-failed: the room's forward extremity. */
static const room_event *room_extremity(const room *r)
{
    size_t i;

    for (i = r->count; i-- > 0;) {
        if (!r->events[i].soft_failed) {
            return &r->events[i];
        }
    }
    return NULL;
}

/* ---- Making events ----------------------------------------------------- */

/* Appends a reference to `ev` as prev_events and auth_events list it. */
static bool append_ref(room_host *h, const room *r, const room_event *ev,
                       char *buf, size_t size, size_t *len)
{
    const mxl_plugin_v1 *mxl = h->mxl;
    mxl_bytes *hash = NULL;
    mxl_error *error = NULL;
    mxl_result rc;
    bool ok;

    if (!has_own_event_ids(r)) {
        return append(buf, size, len, "\"%s\"", ev->event_id);
    }
    rc = mxl->reference_hash((const uint8_t *)ev->json, ev->json_len,
                             r->version, &hash, &error);
    if (rc != MXL_RESULT_OK) {
        print_error(mxl, "mxl_reference_hash", rc, error);
        return false;
    }
    ok = append(buf, size, len, "[\"%s\",{\"sha256\":\"%s\"}]", ev->event_id,
                (const char *)mxl->bytes_data(hash));
    mxl->bytes_free(hash);
    return ok;
}

/*
 * Writes, signs and identifies a state event that follows the room's
 * forward extremity. The sender's server signs it. On success *out_json
 * and *out_id are new strings to free().
 */
static bool make_event(room_host *h, const room *r, const char *type,
                       const char *state_key, const char *sender,
                       const char *content, const room_event *const *auth,
                       size_t auth_count, char **out_json, size_t *out_len,
                       char **out_id)
{
    const mxl_plugin_v1 *mxl = h->mxl;
    const room_event *prev = room_extremity(r);
    const char *server = strchr(sender, ':') + 1;
    const mxl_signing_key *key =
        strcmp(server, ROOM_RESIDENT) == 0 ? h->resident_key : h->remote_key;
    char event[4096];
    size_t len = 0;
    size_t i;
    mxl_bytes *signed_event = NULL;
    mxl_bytes *id = NULL;
    mxl_error *error = NULL;
    mxl_result rc;
    bool ok = append(event, sizeof event, &len, "{\"auth_events\":[");

    for (i = 0; ok && i < auth_count; i++) {
        ok = (i == 0 || append(event, sizeof event, &len, ","))
             && append_ref(h, r, auth[i], event, sizeof event, &len);
    }
    ok = ok
         && append(event, sizeof event, &len,
                   "],\"content\":%s,\"depth\":%" PRId64 ",\"origin\":\"%s\","
                   "\"origin_server_ts\":%" PRId64 ",\"prev_events\":[",
                   content, prev != NULL ? prev->depth + 1 : 1, server,
                   ROOM_NOW_MS)
         && (prev == NULL || append_ref(h, r, prev, event, sizeof event, &len))
         && append(event, sizeof event, &len,
                   "],\"room_id\":\"%s\",\"sender\":\"%s\","
                   "\"state_key\":\"%s\",\"type\":\"%s\"",
                   r->room_id, sender, state_key, type)
         && (!has_own_event_ids(r)
             || append(event, sizeof event, &len, ",\"event_id\":\"$%zu:%s\"",
                       r->count, server))
         && append(event, sizeof event, &len, "}");
    if (!ok) {
        fprintf(stderr, "room: an event of %s does not fit\n", r->room_id);
        return false;
    }

    rc = mxl->sign_event((const uint8_t *)event, len, r->version, server, key,
                         &signed_event, &error);
    if (rc != MXL_RESULT_OK) {
        print_error(mxl, "mxl_sign_event", rc, error);
        return false;
    }
    rc = mxl->event_id(mxl->bytes_data(signed_event),
                       mxl->bytes_len(signed_event), r->version, &id, &error);
    if (rc != MXL_RESULT_OK) {
        print_error(mxl, "mxl_event_id", rc, error);
        mxl->bytes_free(signed_event);
        return false;
    }

    *out_json = take_bytes(mxl, signed_event, out_len);
    *out_id = take_bytes(mxl, id, NULL);
    return *out_json != NULL && *out_id != NULL;
}

/* Makes a state event and appends it to the room's history. */
static bool add_state(room_host *h, room *r, const char *type,
                      const char *state_key, const char *sender,
                      const char *content, const size_t *auth,
                      size_t auth_count)
{
    const room_event *auth_events[4];
    char *json = NULL;
    char *id = NULL;
    size_t len = 0;
    size_t i;
    bool ok;

    for (i = 0; i < auth_count; i++) {
        auth_events[i] = &r->events[auth[i]];
    }
    ok = make_event(h, r, type, state_key, sender, content, auth_events,
                    auth_count, &json, &len, &id)
         && room_append(r, id, json, len, false);
    free(json);
    free(id);
    return ok;
}

/* A room created by the admin, public, with ROOM_USER joined. */
static bool build_room(room_host *h, room *r, const char *room_id,
                       const char *version)
{
    enum { CREATE, ADMIN, POWER, RULES };
    static const size_t admin_auth[] = {CREATE};
    static const size_t power_auth[] = {CREATE, ADMIN};
    static const size_t rules_auth[] = {CREATE, POWER, ADMIN};
    static const size_t user_auth[] = {CREATE, POWER, RULES};
    char create[256];

    r->room_id = room_id;
    r->version = version;
    snprintf(create, sizeof create,
             "{\"creator\":\"" ROOM_ADMIN "\",\"room_version\":\"%s\"}",
             version);
    return add_state(h, r, "m.room.create", "", ROOM_ADMIN, create, NULL, 0)
           && add_state(h, r, "m.room.member", ROOM_ADMIN, ROOM_ADMIN,
                        "{\"membership\":\"join\"}", admin_auth, 1)
           && add_state(h, r, "m.room.power_levels", "", ROOM_ADMIN,
                        "{\"ban\":50,\"events_default\":0,\"invite\":0,"
                        "\"kick\":50,\"redact\":50,\"state_default\":50,"
                        "\"users\":{\"" ROOM_ADMIN "\":100},"
                        "\"users_default\":0}",
                        power_auth, 2)
           && add_state(h, r, "m.room.join_rules", "", ROOM_ADMIN,
                        "{\"join_rule\":\"public\"}", rules_auth, 3)
           && add_state(h, r, "m.room.member", ROOM_USER, ROOM_USER,
                        "{\"membership\":\"join\"}", user_auth, 3);
}

/* ---- The homeserver ---------------------------------------------------- */

/* The specification's test seed (the key "ed25519:1" of its examples). */
static const char remote_seed_hex[] =
    "6090c103d5e7af6b15a970fd563ed75549e6159719ae5c3c31dee4316fb75c0d";
static const char resident_seed_hex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char forger_seed_hex[] =
    "4242424242424242424242424242424242424242424242424242424242424242";

static mxl_signing_key *key_from_hex(const mxl_plugin_v1 *mxl, const char *hex)
{
    uint8_t seed[32];
    mxl_signing_key *key = NULL;
    mxl_error *error = NULL;
    mxl_result rc;
    size_t i;

    for (i = 0; i < sizeof seed; i++) {
        unsigned byte = 0;

        sscanf(hex + 2 * i, "%2x", &byte);
        seed[i] = (uint8_t)byte;
    }
    rc = mxl->signing_key_from_seed(seed, sizeof seed, "ed25519:1", &key,
                                    &error);
    if (rc != MXL_RESULT_OK) {
        print_error(mxl, "mxl_signing_key_from_seed", rc, error);
    }
    return key;
}

static char *public_key(const mxl_plugin_v1 *mxl, const mxl_signing_key *key)
{
    mxl_bytes *text = NULL;
    mxl_error *error = NULL;
    mxl_result rc = mxl->signing_key_public_key(key, &text, &error);

    if (rc != MXL_RESULT_OK) {
        print_error(mxl, "mxl_signing_key_public_key", rc, error);
        return NULL;
    }
    return take_bytes(mxl, text, NULL);
}

room_host *room_host_new(const mxl_plugin_v1 *mxl)
{
    room_host *h = calloc(1, sizeof *h);

    if (h == NULL) {
        return NULL;
    }
    h->mxl = mxl;
    h->print_log = getenv("MXL_EXAMPLE_LOG") != NULL;
    h->resident_key = key_from_hex(mxl, resident_seed_hex);
    h->remote_key = key_from_hex(mxl, remote_seed_hex);
    h->forger_key = key_from_hex(mxl, forger_seed_hex);
    if (h->resident_key == NULL || h->remote_key == NULL
        || h->forger_key == NULL) {
        room_host_free(h);
        return NULL;
    }
    h->resident_public = public_key(mxl, h->resident_key);
    h->remote_public = public_key(mxl, h->remote_key);
    h->rooms_count = 2;
    if (h->resident_public == NULL || h->remote_public == NULL
        || !build_room(h, &h->rooms[0], ROOM_V10_ID, "10")
        || !build_room(h, &h->rooms[1], ROOM_V1_ID, "1")) {
        room_host_free(h);
        return NULL;
    }
    return h;
}

void room_host_free(void *host)
{
    room_host *h = host;
    size_t i;
    size_t j;

    if (h == NULL) {
        return;
    }
    for (i = 0; i < h->rooms_count; i++) {
        for (j = 0; j < h->rooms[i].count; j++) {
            event_clear(&h->rooms[i].events[j]);
        }
    }
    h->mxl->signing_key_free(h->resident_key);
    h->mxl->signing_key_free(h->remote_key);
    h->mxl->signing_key_free(h->forger_key);
    free(h->resident_public);
    free(h->remote_public);
    free(h);
}

/* ---- The resident callbacks -------------------------------------------- */

static int32_t answer(room_host *h, mxl_out *out, const char *text, size_t len)
{
    h->mxl->out_set(out, (const uint8_t *)text, len);
    return MXL_CB_OK;
}

static int32_t cb_room_version(void *userdata, const mxl_lookup *query,
                               mxl_out *out)
{
    room_host *h = userdata;
    const room *r = room_find(h, query->room_id);

    if (r == NULL) {
        return MXL_CB_NOT_FOUND;
    }
    return answer(h, out, r->version, strlen(r->version));
}

static int32_t cb_state_event(void *userdata, const mxl_lookup *query,
                              mxl_out *out)
{
    room_host *h = userdata;
    const room *r = room_find(h, query->room_id);
    const room_event *ev =
        r != NULL ? room_state(r, query->event_type, query->state_key) : NULL;

    if (ev == NULL) {
        return MXL_CB_NOT_FOUND;
    }
    return answer(h, out, ev->json, ev->json_len);
}

static int32_t cb_get_event(void *userdata, const mxl_lookup *query,
                            mxl_out *out)
{
    room_host *h = userdata;
    const room *r = room_find(h, query->room_id);
    const room_event *ev =
        r != NULL ? room_event_by_id(r, query->event_id) : NULL;

    if (ev == NULL) {
        return MXL_CB_NOT_FOUND;
    }
    return answer(h, out, ev->json, ev->json_len);
}

static int32_t cb_forward_extremities(void *userdata, const mxl_lookup *query,
                                      mxl_out *out)
{
    room_host *h = userdata;
    const room *r = room_find(h, query->room_id);
    const room_event *ev = r != NULL ? room_extremity(r) : NULL;
    char text[512];
    int len;

    if (ev == NULL) {
        return MXL_CB_NOT_FOUND;
    }
    len = snprintf(text, sizeof text, "[[\"%s\",%" PRId64 "]]", ev->event_id,
                   ev->depth);
    if (len < 0 || (size_t)len >= sizeof text) {
        return MXL_CB_ERROR;
    }
    return answer(h, out, text, (size_t)len);
}

static int32_t cb_servers_in_room(void *userdata, const mxl_lookup *query,
                                  mxl_out *out)
{
    room_host *h = userdata;
    const room *r = room_find(h, query->room_id);
    char text[1024] = "[";
    size_t len = 1;
    size_t i;

    if (r == NULL) {
        return MXL_CB_NOT_FOUND;
    }
    for (i = 0; i < r->count; i++) {
        const room_event *ev = &r->events[i];
        const char *server;
        char quoted[300];

        /* Current joined members only, each server once. */
        if (ev->state_key == NULL || strcmp(ev->type, "m.room.member") != 0
            || room_state(r, "m.room.member", ev->state_key) != ev
            || ev->membership == NULL || strcmp(ev->membership, "join") != 0
            || (server = strchr(ev->state_key, ':')) == NULL) {
            continue;
        }
        snprintf(quoted, sizeof quoted, "\"%s\"", server + 1);
        if (strstr(text, quoted) != NULL) {
            continue;
        }
        if (!append(text, sizeof text, &len, "%s%s", len > 1 ? "," : "",
                    quoted)) {
            return MXL_CB_ERROR;
        }
    }
    if (!append(text, sizeof text, &len, "]")) {
        return MXL_CB_ERROR;
    }
    return answer(h, out, text, len);
}

static int32_t cb_server_keys(void *userdata, const mxl_lookup *query,
                              mxl_out *out)
{
    room_host *h = userdata;
    const char *key = NULL;
    char text[256];
    int len;

    if (query->server_name != NULL
        && strcmp(query->server_name, ROOM_REMOTE) == 0) {
        key = h->remote_public;
    } else if (query->server_name != NULL
               && strcmp(query->server_name, ROOM_RESIDENT) == 0) {
        key = h->resident_public;
    }
    if (key == NULL) {
        return MXL_CB_NOT_FOUND;
    }
    len = snprintf(text, sizeof text, "{\"ed25519:1\":\"%s\"}", key);
    if (len < 0 || (size_t)len >= sizeof text) {
        return MXL_CB_ERROR;
    }
    return answer(h, out, text, (size_t)len);
}

static int32_t cb_store_event(void *userdata, const mxl_store *params)
{
    room_host *h = userdata;
    room *r = room_find(h, params->room_id);

    if (r == NULL
        || !room_append(r, params->event_id, (const char *)params->event_json,
                        params->event_json_len, params->soft_failed)) {
        return MXL_CB_ERROR;
    }
    h->stored++;
    return MXL_CB_OK;
}

static int64_t cb_now_ms(void *userdata)
{
    (void)userdata;
    return ROOM_NOW_MS;
}

static void cb_log(void *userdata, uint32_t level, const char *message,
                   size_t len)
{
    const room_host *h = userdata;

    if (h->print_log) {
        fprintf(stderr, "matrix-leave [%u] %.*s\n", (unsigned)level, (int)len,
                message);
    }
}

mxl_resident_callbacks room_host_callbacks(room_host *host)
{
    mxl_resident_callbacks callbacks;

    memset(&callbacks, 0, sizeof callbacks);
    callbacks.userdata = host;
    callbacks.userdata_free = room_host_free;
    callbacks.room_version = cb_room_version;
    callbacks.state_event = cb_state_event;
    callbacks.get_event = cb_get_event;
    callbacks.forward_extremities = cb_forward_extremities;
    callbacks.servers_in_room = cb_servers_in_room;
    callbacks.server_keys = cb_server_keys;
    callbacks.store_event = cb_store_event;
    callbacks.now_ms = cb_now_ms;
    callbacks.log = cb_log;
    return callbacks;
}

/* ---- The remote server's part ------------------------------------------ */

bool room_remote_leave(room_host *host, const mxl_signing_key *key,
                       const char *room_id, const uint8_t *template_json,
                       size_t template_len, const char *event_id,
                       char **out_event, char **out_event_id)
{
    const mxl_plugin_v1 *mxl = host->mxl;
    mxl_template_params params;
    mxl_bytes *done = NULL;
    mxl_error *error = NULL;
    mxl_result rc;
    const char *text;
    const char *event;
    size_t len;
    size_t event_len;

    memset(&params, 0, sizeof params);
    params.response = template_json;
    params.response_len = template_len;
    params.room_id = room_id;
    params.user_id = ROOM_USER;
    params.server_name = ROOM_REMOTE;
    params.key = key;
    params.event_id = event_id;
    rc = mxl->complete_leave_template(&params, &done, &error);
    if (rc != MXL_RESULT_OK) {
        print_error(mxl, "mxl_complete_leave_template", rc, error);
        return false;
    }

    /* {"event": {...}, "event_id": "...", ...} */
    text = (const char *)mxl->bytes_data(done);
    len = mxl->bytes_len(done);
    *out_event = NULL;
    if (room_json_member(text, len, "event", &event, &event_len)) {
        *out_event = dup_span(event, event_len);
    }
    *out_event_id = member_string(text, len, "event_id");
    mxl->bytes_free(done);
    if (*out_event == NULL || *out_event_id == NULL) {
        free(*out_event);
        free(*out_event_id);
        return false;
    }
    return true;
}

/* ---- The requests ------------------------------------------------------ */

typedef struct {
    const mxl_plugin_v1 *mxl;
    room_host *host; /* owned by the resident */
    mxl_resident *resident;
    FILE *out;
    int failures;
} session;

/* Prints the answer's line, checks the store saw `stores` new events, and
 * frees the response. Returns a copy of a 200 answer's body, to free(). */
static char *finish(session *s, const char *name, mxl_result rc,
                    mxl_error *error, mxl_response *response,
                    size_t stored_before, size_t stores)
{
    const mxl_plugin_v1 *mxl = s->mxl;
    const char *errcode;
    const uint8_t *body;
    size_t body_len = 0;
    char *copy = NULL;

    if (rc != MXL_RESULT_OK) {
        print_error(mxl, name, rc, error);
        fprintf(s->out, "%-40s no answer\n", name);
        s->failures++;
        return NULL;
    }
    errcode = mxl->response_errcode(response);
    fprintf(s->out, "%-40s %u %s\n", name,
            (unsigned)mxl->response_status(response),
            errcode[0] != '\0' ? errcode : "-");
    if (s->host->stored != stored_before + stores) {
        fprintf(stderr, "room: %s: %zu event(s) stored, expected %zu\n", name,
                s->host->stored - stored_before, stores);
        s->failures++;
    }
    if (mxl->response_status(response) == 200) {
        body = mxl->response_body(response, &body_len);
        copy = dup_span((const char *)body, body_len);
    }
    mxl->response_free(response);
    return copy;
}

static char *make_leave(session *s, const char *name, const char *room_id,
                        const char *user_id)
{
    mxl_response *response = NULL;
    mxl_error *error = NULL;
    size_t before = s->host->stored;
    mxl_result rc = s->mxl->resident_make_leave(
        s->resident, room_id, user_id, ROOM_REMOTE, &response, &error);

    return finish(s, name, rc, error, response, before, 0);
}

static void send_leave(session *s, const char *name, const char *room_id,
                       const char *event_id, const char *body, size_t body_len,
                       uint32_t api_version, size_t stores)
{
    mxl_send_leave_params params;
    mxl_response *response = NULL;
    mxl_error *error = NULL;
    size_t before = s->host->stored;
    mxl_result rc;
    const char *expected;
    char *answer_body;

    memset(&params, 0, sizeof params);
    params.room_id = room_id;
    params.event_id = event_id;
    params.body = (const uint8_t *)body;
    params.body_len = body_len;
    params.origin = ROOM_REMOTE;
    params.api_version = api_version;
    rc = s->mxl->resident_send_leave(s->resident, &params, &response, &error);
    answer_body = finish(s, name, rc, error, response, before, stores);

    /* An accepted leave is answered {} by v2 and [200, {}] by v1. */
    expected = api_version == 1 ? "[200,{}]" : "{}";
    if (answer_body != NULL && strcmp(answer_body, expected) != 0) {
        fprintf(stderr, "room: %s: body %s, expected %s\n", name,
                answer_body, expected);
        s->failures++;
    }
    free(answer_body);
}

/* `json` followed by spaces up to `size` bytes: the same event, since JSON
 * ignores the whitespace. */
static char *padded(const char *json, size_t size)
{
    size_t len = strlen(json);
    char *text = malloc(size + 1);

    if (text != NULL && len <= size) {
        memcpy(text, json, len);
        memset(text + len, ' ', size - len);
        text[size] = '\0';
    }
    return text;
}

/* A leave by ROOM_USER whose state_key is the admin: a kick dressed up as a
 * leave, correctly signed by remote.example. */
static bool disguised_kick(room_host *h, room *r, char **out_json,
                           size_t *out_len, char **out_id)
{
    const room_event *auth[4];

    auth[0] = room_state(r, "m.room.create", "");
    auth[1] = room_state(r, "m.room.power_levels", "");
    auth[2] = room_state(r, "m.room.member", ROOM_USER);
    auth[3] = room_state(r, "m.room.member", ROOM_ADMIN);
    return make_event(h, r, "m.room.member", ROOM_ADMIN, ROOM_USER,
                      "{\"membership\":\"leave\"}", auth, 4, out_json,
                      out_len, out_id);
}

static void v10_requests(session *s)
{
    room_host *h = s->host;
    char *template_json;
    char *leave = NULL;
    char *leave_id = NULL;
    char *forged = NULL;
    char *forged_id = NULL;
    char *kick = NULL;
    char *kick_id = NULL;
    char *big = NULL;
    char *limit = NULL;
    size_t kick_len = 0;

    template_json = make_leave(s, "v10 make_leave: joined user", ROOM_V10_ID,
                               ROOM_USER);
    free(make_leave(s, "v10 make_leave: non-member", ROOM_V10_ID,
                    ROOM_STRANGER));
    if (template_json == NULL
        || !room_remote_leave(h, h->remote_key, ROOM_V10_ID,
                              (const uint8_t *)template_json,
                              strlen(template_json), NULL, &leave, &leave_id)
        || !room_remote_leave(h, h->forger_key, ROOM_V10_ID,
                              (const uint8_t *)template_json,
                              strlen(template_json), NULL, &forged,
                              &forged_id)
        || !disguised_kick(h, room_find(h, ROOM_V10_ID), &kick, &kick_len,
                           &kick_id)
        || (big = padded(leave, 65537)) == NULL
        || (limit = padded(leave, 65536)) == NULL) {
        fprintf(stderr, "room: could not make the v10 leaves\n");
        s->failures++;
    } else {
        send_leave(s, "v10 send_leave: 65537-byte body", ROOM_V10_ID,
                   leave_id, big, 65537, 2, 0);
        send_leave(s, "v10 send_leave: disguised kick", ROOM_V10_ID, kick_id,
                   kick, kick_len, 2, 0);
        send_leave(s, "v10 send_leave: forged signature", ROOM_V10_ID,
                   forged_id, forged, strlen(forged), 2, 0);
        send_leave(s, "v10 send_leave: own leave, 65536 bytes", ROOM_V10_ID,
                   leave_id, limit, 65536, 2, 1);
        send_leave(s, "v10 send_leave: same leave again", ROOM_V10_ID,
                   leave_id, leave, strlen(leave), 2, 0);
        free(make_leave(s, "v10 make_leave: after leaving", ROOM_V10_ID,
                        ROOM_USER));
    }
    free(template_json);
    free(leave);
    free(leave_id);
    free(forged);
    free(forged_id);
    free(kick);
    free(kick_id);
    free(big);
    free(limit);
}

static void v1_requests(session *s)
{
    room_host *h = s->host;
    char *template_json;
    char *leave = NULL;
    char *leave_id = NULL;

    template_json = make_leave(s, "v1 make_leave: joined user", ROOM_V1_ID,
                               ROOM_USER);
    if (template_json == NULL
        || !room_remote_leave(h, h->remote_key, ROOM_V1_ID,
                              (const uint8_t *)template_json,
                              strlen(template_json), "$leave:" ROOM_REMOTE,
                              &leave, &leave_id)) {
        fprintf(stderr, "room: could not make the v1 leave\n");
        s->failures++;
    } else {
        send_leave(s, "v1 send_leave (API v1): own leave", ROOM_V1_ID,
                   leave_id, leave, strlen(leave), 1, 1);
    }
    free(template_json);
    free(leave);
    free(leave_id);
}

int room_run_requests(const mxl_plugin_v1 *mxl, FILE *out)
{
    mxl_resident_config config;
    mxl_resident_callbacks callbacks;
    mxl_error *error = NULL;
    mxl_result rc;
    session s;

    memset(&s, 0, sizeof s);
    s.mxl = mxl;
    s.out = out;
    s.host = room_host_new(mxl);
    if (s.host == NULL) {
        return 1;
    }

    memset(&config, 0, sizeof config);
    config.server_name = ROOM_RESIDENT;
    config.enable_v1 = true;
    callbacks = room_host_callbacks(s.host);
    /* From here the resident owns the host, even if this call fails. */
    rc = mxl->resident_new(&config, &callbacks, &s.resident, &error);
    if (rc != MXL_RESULT_OK) {
        print_error(mxl, "mxl_resident_new", rc, error);
        return 1;
    }

    v10_requests(&s);
    v1_requests(&s);

    mxl->resident_free(s.resident); /* frees the host too */
    return s.failures == 0 ? 0 : 1;
}
