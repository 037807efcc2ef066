/*
 * Every host callback failing at every place the library calls it.
 *
 * For a good make_leave and a good send_leave in a room version 10 room and
 * a room version 1 room (examples/c/room.c), a first run counts how often
 * the library calls each callback. Then, for each callback and each of its
 * calls, a fresh host makes exactly that call fail, in each way a host can
 * fail:
 *
 *   - it returns MXL_CB_ERROR;
 *   - it answers malformed data through mxl_out_set (JSON cut short, or a
 *     room version that is not UTF-8) and returns MXL_CB_OK;
 *   - it returns MXL_CB_OK without calling mxl_out_set;
 *   - store_event, which answers nothing, returns MXL_CB_NOT_FOUND or a
 *     status that is none of the three instead;
 *   - and, once per callback, the function pointer is NULL.
 *
 * Each time the answer must be 500 M_UNKNOWN with nothing stored, and the
 * next call on the same resident context, with the callbacks working again,
 * must succeed (except after a NULL callback, which stays NULL).
 * userdata_free must run exactly once per context.
 */
#include "matrix_leave.h"
#include "room.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    CB_ROOM_VERSION,
    CB_STATE_EVENT,
    CB_GET_EVENT,
    CB_FORWARD_EXTREMITIES,
    CB_SERVERS_IN_ROOM,
    CB_SERVER_KEYS,
    CB_STORE_EVENT,
    CB_COUNT
};

static const char *const callback_names[CB_COUNT] = {
    "room_version",    "state_event",     "get_event",  "forward_extremities",
    "servers_in_room", "server_keys",     "store_event",
};

typedef enum {
    FAULT_ERROR,     /* MXL_CB_ERROR */
    FAULT_MALFORMED, /* bad data through mxl_out_set; store_event: status 42 */
    FAULT_NO_ANSWER, /* MXL_CB_OK, no mxl_out_set; store_event: NOT_FOUND */
    FAULT_MISSING,   /* the function pointer is NULL */
    FAULT_COUNT
} fault;

static const char *const fault_names[FAULT_COUNT] = {
    "returns MXL_CB_ERROR",
    "answers malformed data",
    "answers nothing",
    "is NULL",
};

/* The userdata of the wrapped callbacks. */
typedef struct {
    mxl_resident_callbacks inner; /* room.c's callbacks over a room_host */
    int fail_callback;            /* CB_*, or -1 for none */
    unsigned fail_call;           /* which call of it fails, from 1 */
    fault how;
    unsigned calls[CB_COUNT];
    unsigned first_calls[CB_COUNT]; /* the calls of the first request */
    bool injected;
    unsigned freed;
} faulty;

/* Counts a call and says whether it is the one to fail. */
static bool fails(faulty *f, int callback)
{
    f->calls[callback]++;
    if (f->fail_callback == callback && f->calls[callback] == f->fail_call) {
        f->injected = true;
        return true;
    }
    return false;
}

static int32_t lookup(faulty *f, int callback, mxl_lookup_fn real,
                      const mxl_lookup *query, mxl_out *out)
{
    static const char not_utf8[] = "\xff\xfe";
    static const char cut_short[] = "{\"key\": [1, ";

    if (!fails(f, callback)) {
        return real(f->inner.userdata, query, out);
    }
    switch (f->how) {
    case FAULT_MALFORMED:
        if (callback == CB_ROOM_VERSION) {
            mxl_out_set(out, (const uint8_t *)not_utf8, sizeof not_utf8 - 1);
        } else {
            mxl_out_set(out, (const uint8_t *)cut_short, sizeof cut_short - 1);
        }
        return MXL_CB_OK;
    case FAULT_NO_ANSWER:
        return MXL_CB_OK;
    default:
        return MXL_CB_ERROR;
    }
}

static int32_t w_room_version(void *userdata, const mxl_lookup *query,
                              mxl_out *out)
{
    faulty *f = userdata;
    return lookup(f, CB_ROOM_VERSION, f->inner.room_version, query, out);
}

static int32_t w_state_event(void *userdata, const mxl_lookup *query,
                             mxl_out *out)
{
    faulty *f = userdata;
    return lookup(f, CB_STATE_EVENT, f->inner.state_event, query, out);
}

static int32_t w_get_event(void *userdata, const mxl_lookup *query,
                           mxl_out *out)
{
    faulty *f = userdata;
    return lookup(f, CB_GET_EVENT, f->inner.get_event, query, out);
}

static int32_t w_forward_extremities(void *userdata, const mxl_lookup *query,
                                     mxl_out *out)
{
    faulty *f = userdata;
    return lookup(f, CB_FORWARD_EXTREMITIES, f->inner.forward_extremities,
                  query, out);
}

static int32_t w_servers_in_room(void *userdata, const mxl_lookup *query,
                                 mxl_out *out)
{
    faulty *f = userdata;
    return lookup(f, CB_SERVERS_IN_ROOM, f->inner.servers_in_room, query, out);
}

static int32_t w_server_keys(void *userdata, const mxl_lookup *query,
                             mxl_out *out)
{
    faulty *f = userdata;
    return lookup(f, CB_SERVER_KEYS, f->inner.server_keys, query, out);
}

static int32_t w_store_event(void *userdata, const mxl_store *params)
{
    faulty *f = userdata;

    if (!fails(f, CB_STORE_EVENT)) {
        return f->inner.store_event(f->inner.userdata, params);
    }
    switch (f->how) {
    case FAULT_MALFORMED:
        return 42;
    case FAULT_NO_ANSWER:
        return MXL_CB_NOT_FOUND;
    default:
        return MXL_CB_ERROR;
    }
}

static int64_t w_now_ms(void *userdata)
{
    faulty *f = userdata;
    return f->inner.now_ms(f->inner.userdata);
}

static void w_log(void *userdata, uint32_t level, const char *message,
                  size_t len)
{
    faulty *f = userdata;
    f->inner.log(f->inner.userdata, level, message, len);
}

static void w_free(void *userdata)
{
    faulty *f = userdata;

    f->freed++;
    f->inner.userdata_free(f->inner.userdata);
}

static mxl_resident_callbacks wrapped(faulty *f)
{
    mxl_resident_callbacks cb;
    bool missing = f->how == FAULT_MISSING;

    memset(&cb, 0, sizeof cb);
    cb.userdata = f;
    cb.userdata_free = w_free;
    cb.room_version = w_room_version;
    cb.state_event = w_state_event;
    cb.get_event = w_get_event;
    cb.forward_extremities = w_forward_extremities;
    cb.servers_in_room = w_servers_in_room;
    cb.server_keys = w_server_keys;
    cb.store_event = w_store_event;
    cb.now_ms = w_now_ms;
    cb.log = w_log;
    if (missing) {
        switch (f->fail_callback) {
        case CB_ROOM_VERSION: cb.room_version = NULL; break;
        case CB_STATE_EVENT: cb.state_event = NULL; break;
        case CB_GET_EVENT: cb.get_event = NULL; break;
        case CB_FORWARD_EXTREMITIES: cb.forward_extremities = NULL; break;
        case CB_SERVERS_IN_ROOM: cb.servers_in_room = NULL; break;
        case CB_SERVER_KEYS: cb.server_keys = NULL; break;
        case CB_STORE_EVENT: cb.store_event = NULL; break;
        default: break;
        }
        f->injected = true;
    }
    return cb;
}

/* ---- Scenarios --------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *room_id;
    char *leave;    /* send_leave body; NULL for make_leave */
    char *leave_id;
    uint32_t api_version;
} scenario;

typedef struct {
    unsigned status;
    char errcode[40];
    size_t stored;
} outcome;

static const mxl_plugin_v1 *mxl;
static int failures;

/* One request of the scenario on `resident`; the host is `host`. */
static bool request(const scenario *sc, const mxl_resident *resident,
                    const room_host *host, outcome *out)
{
    mxl_response *response = NULL;
    mxl_error *error = NULL;
    mxl_result rc;

    if (sc->leave == NULL) {
        rc = mxl_resident_make_leave(resident, sc->room_id, ROOM_USER,
                                     ROOM_REMOTE, &response, &error);
    } else {
        mxl_send_leave_params params;

        memset(&params, 0, sizeof params);
        params.room_id = sc->room_id;
        params.event_id = sc->leave_id;
        params.body = (const uint8_t *)sc->leave;
        params.body_len = strlen(sc->leave);
        params.origin = ROOM_REMOTE;
        params.api_version = sc->api_version;
        rc = mxl_resident_send_leave(resident, &params, &response, &error);
    }
    if (rc != MXL_RESULT_OK) {
        fprintf(stderr, "FAIL: %s: no response: %s\n", sc->name,
                mxl_error_message(error));
        mxl_error_free(error);
        return false;
    }
    out->status = mxl_response_status(response);
    snprintf(out->errcode, sizeof out->errcode, "%s",
             mxl_response_errcode(response));
    out->stored = host->stored;
    mxl_response_free(response);
    return true;
}

/* On a fresh host: the request with the fault of `f`, then again with the
 * callbacks working. */
static bool run(const scenario *sc, faulty *f, outcome *first,
                outcome *second)
{
    mxl_resident_config config;
    mxl_resident_callbacks callbacks;
    mxl_resident *resident = NULL;
    mxl_error *error = NULL;
    room_host *host = room_host_new(mxl);
    bool ok;

    if (host == NULL) {
        return false;
    }
    f->inner = room_host_callbacks(host);
    f->injected = false;
    f->freed = 0;
    memset(f->calls, 0, sizeof f->calls);
    memset(&config, 0, sizeof config);
    config.server_name = ROOM_RESIDENT;
    config.enable_v1 = true;
    callbacks = wrapped(f);
    if (mxl_resident_new(&config, &callbacks, &resident, &error)
        != MXL_RESULT_OK) {
        fprintf(stderr, "FAIL: mxl_resident_new: %s\n",
                mxl_error_message(error));
        mxl_error_free(error);
        return false;
    }

    ok = request(sc, resident, host, first);
    memcpy(f->first_calls, f->calls, sizeof f->calls);
    f->fail_callback = -1;
    ok = ok && request(sc, resident, host, second);
    mxl_resident_free(resident);
    if (f->freed != 1) {
        fprintf(stderr, "FAIL: userdata_free ran %u times\n", f->freed);
        ok = false;
    }
    return ok;
}

/* A leave made by the remote server from a real make_leave answer. */
static bool prepare_leave(scenario *sc, const char *v1_event_id)
{
    room_host *host = room_host_new(mxl);
    mxl_resident_callbacks callbacks;
    mxl_resident_config config;
    mxl_resident *resident = NULL;
    mxl_response *response = NULL;
    const uint8_t *body;
    size_t body_len = 0;
    bool ok;

    if (host == NULL) {
        return false;
    }
    memset(&config, 0, sizeof config);
    config.server_name = ROOM_RESIDENT;
    callbacks = room_host_callbacks(host);
    ok = mxl_resident_new(&config, &callbacks, &resident, NULL)
             == MXL_RESULT_OK
         && mxl_resident_make_leave(resident, sc->room_id, ROOM_USER,
                                    ROOM_REMOTE, &response, NULL)
                == MXL_RESULT_OK
         && mxl_response_status(response) == 200;
    if (ok) {
        body = mxl_response_body(response, &body_len);
        ok = room_remote_leave(host, host->remote_key, sc->room_id, body,
                               body_len, v1_event_id, &sc->leave,
                               &sc->leave_id);
    }
    mxl_response_free(response);
    mxl_resident_free(resident);
    return ok;
}

static void check_scenario(const scenario *sc, unsigned *covered)
{
    faulty f;
    outcome first;
    outcome second;
    unsigned counts[CB_COUNT];
    unsigned sites = 0;
    unsigned runs = 0;
    int cb;
    unsigned call;
    int how;

    /* Count the calls of a good request. */
    memset(&f, 0, sizeof f);
    f.fail_callback = -1;
    if (!run(sc, &f, &first, &second) || first.status != 200
        || second.status != 200) {
        fprintf(stderr, "FAIL: %s: the good request is answered %u, %u\n",
                sc->name, first.status, second.status);
        failures++;
        return;
    }
    memcpy(counts, f.first_calls, sizeof counts);

    for (cb = 0; cb < CB_COUNT; cb++) {
        if (counts[cb] > 0) {
            covered[cb]++;
        }
        sites += counts[cb];
        for (call = 1; call <= counts[cb]; call++) {
            for (how = 0; how < FAULT_COUNT; how++) {
                if (how == FAULT_MISSING && call > 1) {
                    continue; /* a NULL pointer fails every call at once */
                }
                memset(&f, 0, sizeof f);
                f.fail_callback = cb;
                f.fail_call = call;
                f.how = (fault)how;
                runs++;
                if (!run(sc, &f, &first, &second)) {
                    failures++;
                    continue;
                }
                /* A NULL callback stays NULL: the context cannot recover. */
                if (how == FAULT_MISSING) {
                    second.status = 200;
                }
                if (!f.injected || first.status != 500
                    || strcmp(first.errcode, "M_UNKNOWN") != 0
                    || first.stored != 0 || second.status != 200) {
                    fprintf(stderr,
                            "FAIL: %s: call %u of %s %s: answered %u %s with "
                            "%zu stored%s; then %u\n",
                            sc->name, call, callback_names[cb],
                            fault_names[how], first.status, first.errcode,
                            first.stored, f.injected ? "" : " (not injected)",
                            second.status);
                    failures++;
                }
            }
        }
    }
    printf("failing_callbacks: %s: %u call sites (", sc->name, sites);
    for (cb = 0; cb < CB_COUNT; cb++) {
        if (counts[cb] > 0) {
            printf("%s%s %u", cb > 0 ? ", " : "", callback_names[cb],
                   counts[cb]);
        }
    }
    printf("), %u faults: 500 M_UNKNOWN, nothing stored, next call 200\n",
           runs);
}

int main(void)
{
    scenario scenarios[] = {
        {"make_leave v10", ROOM_V10_ID, NULL, NULL, 0},
        {"make_leave v1", ROOM_V1_ID, NULL, NULL, 0},
        {"send_leave v10", ROOM_V10_ID, NULL, NULL, 2},
        {"send_leave v1", ROOM_V1_ID, NULL, NULL, 1},
    };
    size_t count = sizeof scenarios / sizeof scenarios[0];
    unsigned covered[CB_COUNT] = {0};
    size_t i;
    int cb;

    mxl = mxl_plugin_get(MXL_ABI_VERSION, NULL);
    if (mxl == NULL || !prepare_leave(&scenarios[2], NULL)
        || !prepare_leave(&scenarios[3], "$leave:" ROOM_REMOTE)) {
        fprintf(stderr, "FAIL: could not prepare the leaves\n");
        return 1;
    }

    for (i = 0; i < count; i++) {
        check_scenario(&scenarios[i], covered);
    }
    for (cb = 0; cb < CB_COUNT; cb++) {
        if (covered[cb] == 0) {
            fprintf(stderr, "FAIL: no scenario calls %s\n",
                    callback_names[cb]);
            failures++;
        }
    }

    for (i = 0; i < count; i++) {
        free(scenarios[i].leave);
        free(scenarios[i].leave_id);
    }
    if (failures == 0) {
        printf("failing_callbacks: ok\n");
    }
    return failures == 0 ? 0 : 1;
}
