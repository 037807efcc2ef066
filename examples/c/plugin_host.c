/*
 * A C homeserver that loads matrix-leave at run time as a plugin: it opens
 * the shared library with dlopen, looks up its one entry point,
 * mxl_plugin_get, and makes every call through the table that returns.
 * It answers the same requests as host.c (room.c) and prints the same lines.
 *
 * Usage: plugin_host [path/to/libmatrix_leave.so]
 * Without a path the dynamic loader searches for libmatrix_leave.so.
 */
#include "matrix_leave.h"
#include "room.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* The type of mxl_plugin_get; the header declares the function, not this. */
typedef const mxl_plugin_v1 *(*plugin_get_fn)(uint32_t abi_version,
                                              const char **out_reason);

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "libmatrix_leave.so";
    const mxl_plugin_v1 *mxl;
    const char *reason = NULL;
    plugin_get_fn get;
    void *symbol;
    void *library;
    int status;

    /* RTLD_NODELETE keeps the library mapped after dlclose: the first call
     * into it sets up a few bytes of process-wide state (the wrapper around
     * the Rust panic hook) that unloading would lose. */
    library = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (library == NULL) {
        fprintf(stderr, "plugin_host: %s\n", dlerror());
        return 1;
    }
    symbol = dlsym(library, "mxl_plugin_get");
    if (symbol == NULL) {
        fprintf(stderr, "plugin_host: %s\n", dlerror());
        dlclose(library);
        return 1;
    }
    /* ISO C has no cast from an object pointer to a function pointer; copy
     * the bits, as POSIX guarantees they mean the same. */
    memcpy(&get, &symbol, sizeof get);

    /* A host built for another ABI version gets no table, and a reason. */
    if (get(MXL_ABI_VERSION + 1, &reason) != NULL || reason == NULL
        || strstr(reason, "ABI") == NULL) {
        fprintf(stderr, "plugin_host: ABI version %u was not refused\n",
                (unsigned)(MXL_ABI_VERSION + 1));
        dlclose(library);
        return 1;
    }

    mxl = get(MXL_ABI_VERSION, &reason);
    if (mxl == NULL) {
        fprintf(stderr, "plugin_host: %s\n", reason);
        dlclose(library);
        return 1;
    }
    if (reason != NULL || mxl->size < sizeof *mxl
        || mxl->abi_version() != MXL_ABI_VERSION) {
        fprintf(stderr, "plugin_host: the table does not match the header\n");
        dlclose(library);
        return 1;
    }

    status = room_run_requests(mxl, stdout);
    dlclose(library);
    return status;
}
