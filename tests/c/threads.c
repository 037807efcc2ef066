/*
 * One mxl_resident shared by eight POSIX threads.
 *
 * The host is the example homeserver of examples/c/room.c, whose callbacks
 * are not thread-safe; every callback here takes one mutex around the
 * example's own, as a C host with a single-threaded store would. The threads
 * send a mix of make_leave and send_leave requests, good and bad, in their
 * own random orders. Every answer must be the one the same request gets from
 * a single thread on a fresh host, each good leave must be stored exactly
 * once (every other acceptance of it answered as a duplicate), and the run
 * must finish (an alarm ends a deadlocked run).
 *
 * The requests are chosen so that their answers do not depend on the order:
 * no make_leave asks about a user whose leave is among them.
 */
#define _POSIX_C_SOURCE 200809L

#include "matrix_leave.h"
#include "room.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 8
#define CALLS_PER_THREAD 1500
#define DEADLINE_SECONDS 300

/* ---- The guarded host ---------------------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    mxl_resident_callbacks inner; /* the example's callbacks and host */
    unsigned long calls;
} guarded;

static int32_t g_room_version(void *ud, const mxl_lookup *q, mxl_out *out)
{
    guarded *g = ud;
    int32_t rc;

    pthread_mutex_lock(&g->lock);
    g->calls++;
    rc = g->inner.room_version(g->inner.userdata, q, out);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static int32_t g_state_event(void *ud, const mxl_lookup *q, mxl_out *out)
{
    guarded *g = ud;
    int32_t rc;

    pthread_mutex_lock(&g->lock);
    g->calls++;
    rc = g->inner.state_event(g->inner.userdata, q, out);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static int32_t g_get_event(void *ud, const mxl_lookup *q, mxl_out *out)
{
    guarded *g = ud;
    int32_t rc;

    pthread_mutex_lock(&g->lock);
    g->calls++;
    rc = g->inner.get_event(g->inner.userdata, q, out);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static int32_t g_forward_extremities(void *ud, const mxl_lookup *q,
                                     mxl_out *out)
{
    guarded *g = ud;
    int32_t rc;

    pthread_mutex_lock(&g->lock);
    g->calls++;
    rc = g->inner.forward_extremities(g->inner.userdata, q, out);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static int32_t g_servers_in_room(void *ud, const mxl_lookup *q, mxl_out *out)
{
    guarded *g = ud;
    int32_t rc;

    pthread_mutex_lock(&g->lock);
    g->calls++;
    rc = g->inner.servers_in_room(g->inner.userdata, q, out);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static int32_t g_server_keys(void *ud, const mxl_lookup *q, mxl_out *out)
{
    guarded *g = ud;
    int32_t rc;

    pthread_mutex_lock(&g->lock);
    g->calls++;
    rc = g->inner.server_keys(g->inner.userdata, q, out);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static int32_t g_store_event(void *ud, const mxl_store *p)
{
    guarded *g = ud;
    int32_t rc;

    pthread_mutex_lock(&g->lock);
    g->calls++;
    rc = g->inner.store_event(g->inner.userdata, p);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static int64_t g_now_ms(void *ud)
{
    guarded *g = ud;
    int64_t now;

    pthread_mutex_lock(&g->lock);
    now = g->inner.now_ms(g->inner.userdata);
    pthread_mutex_unlock(&g->lock);
    return now;
}

static void g_log(void *ud, uint32_t level, const char *message, size_t len)
{
    guarded *g = ud;

    pthread_mutex_lock(&g->lock);
    g->inner.log(g->inner.userdata, level, message, len);
    pthread_mutex_unlock(&g->lock);
}

static void g_free(void *ud)
{
    guarded *g = ud;

    g->inner.userdata_free(g->inner.userdata);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* A resident over a new example host; *out_host is the host, owned by the
 * resident. */
static mxl_resident *new_resident(const mxl_plugin_v1 *mxl,
                                  room_host **out_host)
{
    mxl_resident_config config;
    mxl_resident_callbacks cb;
    mxl_resident *resident = NULL;
    mxl_error *error = NULL;
    guarded *g;
    room_host *host = room_host_new(mxl);

    if (host == NULL || (g = calloc(1, sizeof *g)) == NULL) {
        room_host_free(host);
        return NULL;
    }
    pthread_mutex_init(&g->lock, NULL);
    g->inner = room_host_callbacks(host);
    memset(&cb, 0, sizeof cb);
    cb.userdata = g;
    cb.userdata_free = g_free;
    cb.room_version = g_room_version;
    cb.state_event = g_state_event;
    cb.get_event = g_get_event;
    cb.forward_extremities = g_forward_extremities;
    cb.servers_in_room = g_servers_in_room;
    cb.server_keys = g_server_keys;
    cb.store_event = g_store_event;
    cb.now_ms = g_now_ms;
    cb.log = g_log;
    memset(&config, 0, sizeof config);
    config.server_name = ROOM_RESIDENT;
    config.enable_v1 = true;
    if (mxl_resident_new(&config, &cb, &resident, &error) != MXL_RESULT_OK) {
        fprintf(stderr, "threads: mxl_resident_new: %s\n",
                mxl_error_message(error));
        mxl_error_free(error);
        return NULL; /* userdata_free has run */
    }
    *out_host = host;
    return resident;
}

/* ---- The requests ------------------------------------------------------ */

typedef struct {
    const char *name;
    int send;             /* 0: make_leave, 1: send_leave */
    const char *room_id;
    const char *user_id;  /* make_leave */
    const char *origin;
    char *event_id;       /* send_leave */
    char *body;
    size_t body_len;
    uint32_t api_version;
    int leave;            /* which good leave (1 or 2), 0 for none */
    /* The single-threaded answer. */
    unsigned status;
    char errcode[40];
} request;

#define REQUESTS 11
static request requests[REQUESTS];

/* Per good leave: answers that stored it (not duplicates). */
static unsigned long first_stores[3];
static unsigned long duplicates;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

/* Sends one request; fills status and errcode; returns 1 for an accepted
 * leave answered as newly stored, 2 for a duplicate, 0 otherwise, -1 when
 * the call itself failed. */
static int call(mxl_resident *resident, const request *r, unsigned *status,
                char *errcode, size_t errcode_size)
{
    mxl_response *response = NULL;
    mxl_error *error = NULL;
    mxl_bytes *json = NULL;
    mxl_result rc;
    int kind = 0;

    if (r->send) {
        mxl_send_leave_params p;

        memset(&p, 0, sizeof p);
        p.room_id = r->room_id;
        p.event_id = r->event_id;
        p.body = (const uint8_t *)r->body;
        p.body_len = r->body_len;
        p.origin = r->origin;
        p.api_version = r->api_version;
        rc = mxl_resident_send_leave(resident, &p, &response, &error);
    } else {
        rc = mxl_resident_make_leave(resident, r->room_id, r->user_id,
                                     r->origin, &response, &error);
    }
    if (rc != MXL_RESULT_OK) {
        fprintf(stderr, "threads: %s: %s\n", r->name, mxl_error_message(error));
        mxl_error_free(error);
        return -1;
    }
    *status = mxl_response_status(response);
    snprintf(errcode, errcode_size, "%s", mxl_response_errcode(response));
    if (mxl_response_accepted(response)) {
        if (mxl_response_json(response, &json, NULL) != MXL_RESULT_OK) {
            mxl_response_free(response);
            return -1;
        }
        /* The answer's JSON is canonical: no spaces. */
        kind = strstr((const char *)mxl_bytes_data(json), "\"duplicate\":true")
                       != NULL
                   ? 2
                   : 1;
        mxl_bytes_free(json);
    }
    mxl_response_free(response);
    return kind;
}

/* Builds the requests, with leaves completed from the resident's own
 * templates by the remote server of the example. */
static int build_requests(mxl_resident *resident, room_host *host)
{
    mxl_response *response = NULL;
    const uint8_t *body;
    size_t len = 0;
    char *leave10 = NULL, *id10 = NULL, *leave1 = NULL, *id1 = NULL;
    char *forged = NULL, *forged_id = NULL;
    int ok = 1;
    int i;
    const char *rooms[2] = {ROOM_V10_ID, ROOM_V1_ID};

    for (i = 0; i < 2 && ok; i++) {
        char *leave = NULL, *id = NULL;

        if (mxl_resident_make_leave(resident, rooms[i], ROOM_USER, ROOM_REMOTE,
                                    &response, NULL) != MXL_RESULT_OK
            || mxl_response_status(response) != 200) {
            ok = 0;
        } else {
            body = mxl_response_body(response, &len);
            ok = room_remote_leave(host, host->remote_key, rooms[i], body, len,
                                   "$leave:" ROOM_REMOTE, &leave, &id);
            if (ok && i == 1) {
                ok = room_remote_leave(host, host->forger_key, rooms[i], body,
                                       len, "$forged:" ROOM_REMOTE, &forged,
                                       &forged_id);
            }
        }
        mxl_response_free(response);
        response = NULL;
        if (i == 0) {
            leave10 = leave;
            id10 = id;
        } else {
            leave1 = leave;
            id1 = id;
        }
    }
    if (!ok) {
        fprintf(stderr, "threads: could not make the leaves\n");
        return 0;
    }
    requests[0] = (request){.name = "make_leave: user of another server",
                            .room_id = ROOM_V10_ID, .user_id = ROOM_USER,
                            .origin = "other.example"};
    requests[1] = (request){.name = "make_leave: unknown room",
                            .room_id = "!nowhere:resident.example",
                            .user_id = ROOM_USER, .origin = ROOM_REMOTE};
    requests[2] = (request){.name = "make_leave: non-member",
                            .room_id = ROOM_V10_ID, .user_id = ROOM_STRANGER,
                            .origin = ROOM_REMOTE};
    requests[3] = (request){.name = "make_leave: v10 admin",
                            .room_id = ROOM_V10_ID, .user_id = ROOM_ADMIN,
                            .origin = ROOM_RESIDENT};
    requests[4] = (request){.name = "make_leave: v1 admin",
                            .room_id = ROOM_V1_ID, .user_id = ROOM_ADMIN,
                            .origin = ROOM_RESIDENT};
    requests[5] = (request){.name = "send_leave v2: v10 leave", .send = 1,
                            .room_id = ROOM_V10_ID, .origin = ROOM_REMOTE,
                            .event_id = id10, .body = leave10,
                            .body_len = strlen(leave10), .api_version = 2,
                            .leave = 1};
    requests[6] = requests[5];
    requests[6].name = "send_leave v1: v10 leave";
    requests[6].api_version = 1;
    requests[7] = (request){.name = "send_leave v1: v1 leave", .send = 1,
                            .room_id = ROOM_V1_ID, .origin = ROOM_REMOTE,
                            .event_id = id1, .body = leave1,
                            .body_len = strlen(leave1), .api_version = 1,
                            .leave = 2};
    requests[8] = requests[5];
    requests[8].name = "send_leave: truncated body";
    requests[8].body_len = strlen(leave10) / 2;
    requests[8].leave = 0;
    requests[9] = requests[5];
    requests[9].name = "send_leave: from another server";
    requests[9].origin = "other.example";
    requests[9].leave = 0;
    requests[10] = (request){.name = "send_leave: forged v1 leave", .send = 1,
                             .room_id = ROOM_V1_ID, .origin = ROOM_REMOTE,
                             .event_id = forged_id, .body = forged,
                             .body_len = strlen(forged), .api_version = 2};
    return 1;
}

/* ---- The threads ------------------------------------------------------- */

typedef struct {
    mxl_resident *resident;
    unsigned seed;
    int failures;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    uint64_t state = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)w->seed << 32);
    int i;

    for (i = 0; i < CALLS_PER_THREAD; i++) {
        const request *r;
        unsigned status = 0;
        char errcode[40];
        int kind;

        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        r = &requests[state % REQUESTS];
        kind = call(w->resident, r, &status, errcode, sizeof errcode);
        if (kind < 0 || status != r->status || strcmp(errcode, r->errcode) != 0) {
            if (w->failures++ < 5) {
                fprintf(stderr, "threads: %s: %u %s, single-threaded %u %s\n",
                        r->name, status, errcode, r->status, r->errcode);
            }
            continue;
        }
        pthread_mutex_lock(&count_lock);
        if (kind == 1) {
            first_stores[r->leave]++;
        } else if (kind == 2) {
            duplicates++;
        }
        pthread_mutex_unlock(&count_lock);
    }
    return NULL;
}

int main(void)
{
    const char *reason = NULL;
    const mxl_plugin_v1 *mxl = mxl_plugin_get(MXL_ABI_VERSION, &reason);
    room_host *ref_host = NULL, *host = NULL;
    mxl_resident *ref, *shared;
    pthread_t threads[THREADS];
    worker workers[THREADS];
    struct timespec t0, t1;
    int failures = 0;
    int i;

    if (mxl == NULL) {
        fprintf(stderr, "threads: mxl_plugin_get: %s\n", reason);
        return 1;
    }
    alarm(DEADLINE_SECONDS); /* a deadlock ends the run */

    /* The single-threaded answers, on a fresh host. */
    ref = new_resident(mxl, &ref_host);
    if (ref == NULL || !build_requests(ref, ref_host)) {
        return 1;
    }
    for (i = 0; i < REQUESTS; i++) {
        if (call(ref, &requests[i], &requests[i].status, requests[i].errcode,
                 sizeof requests[i].errcode) < 0) {
            return 1;
        }
    }
    if (requests[5].status != 200 || requests[7].status != 200
        || requests[3].status != 200 || requests[10].status == 200) {
        fprintf(stderr, "threads: unexpected single-threaded answers\n");
        return 1;
    }
    mxl_resident_free(ref);

    /* The shared run, on another fresh host. */
    shared = new_resident(mxl, &host);
    if (shared == NULL) {
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < THREADS; i++) {
        workers[i] = (worker){.resident = shared, .seed = (unsigned)i + 1};
        if (pthread_create(&threads[i], NULL, work, &workers[i]) != 0) {
            fprintf(stderr, "threads: pthread_create failed\n");
            return 1;
        }
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        failures += workers[i].failures;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);

    for (i = 1; i <= 2; i++) {
        if (first_stores[i] != 1) {
            fprintf(stderr, "threads: leave %d answered as stored %lu times\n",
                    i, first_stores[i]);
            failures++;
        }
    }
    if (host->stored != 2) {
        fprintf(stderr, "threads: %zu events stored, expected 2\n", host->stored);
        failures++;
    }
    printf("threads: %d calls on %d threads in %.2f s, %lu duplicates, "
           "%zu events stored, %d failures\n",
           THREADS * CALLS_PER_THREAD, THREADS,
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
           duplicates, host->stored, failures);
    mxl_resident_free(shared);
    free(requests[5].event_id);
    free(requests[5].body);
    free(requests[7].event_id);
    free(requests[7].body);
    free(requests[10].event_id);
    free(requests[10].body);
    return failures == 0 ? 0 : 1;
}
