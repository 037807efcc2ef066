/*
 * An in-memory homeserver for the C examples: two rooms kept in C, the
 * resident callbacks that let matrix-leave read and write them, and the
 * sequence of make_leave and send_leave requests that host.c and
 * plugin_host.c both answer.
 *
 * Every library call goes through an mxl_plugin_v1 table, so the same code
 * runs whether the library was linked (host.c fills the table with the
 * linked functions) or loaded with dlopen (plugin_host.c gets the table
 * from mxl_plugin_get).
 */
#ifndef ROOM_H
#define ROOM_H

#include "matrix_leave.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The servers and users of the example. */
#define ROOM_RESIDENT "resident.example"
#define ROOM_REMOTE "remote.example"
#define ROOM_ADMIN "@admin:resident.example"
#define ROOM_USER "@user:remote.example"
#define ROOM_STRANGER "@stranger:remote.example"
#define ROOM_V10_ID "!v10:resident.example"
#define ROOM_V1_ID "!v1:resident.example"

/* The clock of the example, in milliseconds since the Unix epoch. */
#define ROOM_NOW_MS INT64_C(1700000000000)

#define ROOM_MAX_EVENTS 32

/* One PDU of a room, with the fields the host indexes it by. */
typedef struct {
    char *event_id;
    char *type;
    char *state_key;  /* NULL for an event that is not state */
    char *membership; /* content.membership of a member event, or NULL */
    char *json;       /* the PDU, NUL-terminated */
    size_t json_len;
    int64_t depth;
    bool soft_failed; /* kept, but not current state or an extremity */
} room_event;

/* A room: its events in the order they were added. The newest event that
 * is not soft-failed is the one forward extremity. */
typedef struct {
    const char *room_id;
    const char *version;
    room_event events[ROOM_MAX_EVENTS];
    size_t count;
} room;

/* The homeserver: rooms, the two servers' keys, and what was stored. */
typedef struct {
    const mxl_plugin_v1 *mxl;
    mxl_signing_key *resident_key;
    mxl_signing_key *remote_key;  /* the remote server's, to play its part */
    mxl_signing_key *forger_key;  /* same key ID as remote_key, other seed */
    char *resident_public;        /* base64 verify keys */
    char *remote_public;
    room rooms[2];
    size_t rooms_count;
    size_t stored; /* successful store_event calls */
    bool print_log; /* MXL_EXAMPLE_LOG is set: log records go to stderr */
} room_host;

/*
 * Builds the homeserver and its rooms: a room version 10 room and a room
 * version 1 room, each created by @admin:resident.example and joined by
 * @user:remote.example, every event signed by its sender's server with
 * keys made from fixed seeds. Returns NULL (after printing why) on failure.
 */
room_host *room_host_new(const mxl_plugin_v1 *mxl);

/* Frees the homeserver; NULL does nothing. Has the signature of
 * mxl_resident_callbacks.userdata_free. */
void room_host_free(void *host);

/*
 * The resident callbacks over `host`, with `host` as userdata and
 * room_host_free as userdata_free: a resident context made with them owns
 * the host and frees it in mxl_resident_free. The callbacks are not
 * thread-safe; use the context from one thread.
 */
mxl_resident_callbacks room_host_callbacks(room_host *host);

/* The room with this ID, or NULL. */
room *room_find(room_host *host, const char *room_id);

/*
 * Plays the remote server: completes a make_leave answer (`template_json`)
 * into a leave of ROOM_USER signed with `key` as remote.example. On success
 * returns true and sets *out_event (the event JSON, NUL-terminated, to
 * free()) and *out_event_id (to free()). `event_id` is the ID to use in
 * room versions 1 and 2 and is ignored later.
 */
bool room_remote_leave(room_host *host, const mxl_signing_key *key,
                       const char *room_id, const uint8_t *template_json,
                       size_t template_len, const char *event_id,
                       char **out_event, char **out_event_id);

/*
 * Finds `key` among the members of the JSON object text[0..len) and sets
 * *value and *value_len to the raw text of its value. Returns false when
 * the key is absent or the text is not an object. Keys written with escapes
 * are not matched. A real homeserver would use its JSON library.
 */
bool room_json_member(const char *text, size_t len, const char *key,
                      const char **value, size_t *value_len);

/*
 * Answers the example's requests with a resident context over a new
 * room_host and prints one line per request to `out`: its name, the HTTP
 * status and the errcode ("-" for none). Returns 0 when every answer left
 * the store as the host expects (a refusal stores nothing, an accepted
 * leave is stored once), 1 otherwise.
 */
int room_run_requests(const mxl_plugin_v1 *mxl, FILE *out);

#endif /* ROOM_H */
