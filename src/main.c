/*
 * main.c: the ogd command line.
 *
 *   ogd serve [--config FILE]          run the server (master + workers)
 *   ogd check-config [FILE]            validate a configuration, print the effective one
 *   ogd demo [--config FILE] [--records N] [--seed S] [--no-images | --hdf5]
 *                                      fill an empty data directory with demo data
 *                                      (--hdf5: as HDF5 files through the ingest path)
 *   ogd import [--config FILE] --collection records|channels|users FILE...
 *                                      load mongoexport JSON documents
 *   ogd ingest [--config FILE] FILE...   load HDF5 files through the ingest pipeline
 *   ogd ingest --url URL [--token T] FILE...  post them to a running server instead
 *   ogd user add|passwd|routes|delete NAME [options] | ogd user list [--config FILE]
 *                                      manage users (passwords from stdin)
 *   ogd version
 *
 * Configuration: FILE, else $OGD_CONFIG, else built-in defaults (the embedded SQLite +
 * local object directory under ./var); OGD_<SECTION>__<KEY> environment variables
 * override either.
 */
#include "cli/import.h"
#include "cli/ingest_cli.h"
#include "cli/user.h"
#include "config/config.h"
#include "demo/demo.h"
#include "demo/demo_hdf5.h"
#include "ingest/hdf5_read.h"
#include "objstore/config.h"
#include "runtime/runtime.h"
#include "store/store.h"
#include "util/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OGD_VERSION_TEXT "0.1.0"

static void usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  ogd serve [--config FILE]\n"
               "  ogd check-config [FILE]\n"
               "  ogd demo [--config FILE] [--records N] [--seed S] [--no-images | --hdf5]\n"
               "  ogd import [--config FILE] --collection records|channels|users FILE...\n"
               "  ogd ingest [--config FILE] FILE...\n"
               "  ogd ingest --url URL [--token TOKEN] FILE...\n"
               "  ogd user add NAME [--route R]... [--all-routes] [--fedid --email ADDR]"
               " (password on stdin)\n"
               "  ogd user passwd NAME | routes NAME [--add R]... [--remove R]... | delete NAME"
               " | list   [--config FILE]\n"
               "  ogd version\n");
}

/* A decimal number, all of s (the helper's arguments). */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = (uint64_t)v;
    return true;
}

static const char *option(int argc, char **argv, const char *name)
{
    for (int i = 2; i < argc - 1; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

/* Loads defaults + file + environment and resolves derived values. */
static int load_config(const char *path, ogd_config *cfg)
{
    char *errors = NULL;
    config_defaults(cfg);
    if (!path)
        path = getenv("OGD_CONFIG");
    if ((path && config_load(cfg, path, &errors) != 0) ||
        config_apply_env(cfg, environ, &errors) != 0 || config_resolve(cfg, &errors) != 0) {
        fprintf(stderr, "%s\n", errors ? errors : "configuration error");
        free(errors);
        config_free(cfg);
        return -1;
    }
    free(errors);
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0750);
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    ogd_config cfg;
    if (load_config(option(argc, argv, "--config"), &cfg) != 0)
        return 2;
    log_level lvl = LOG_INFO;
    log_level_parse(cfg.server.log_level, &lvl);
    if (log_open(cfg.server.log_file, lvl) != 0) {
        fprintf(stderr, "cannot open log file %s\n", cfg.server.log_file);
        return 2;
    }
    mkdir_p(cfg.server.data_dir);
    int rc = master_run(option(argc, argv, "--config"), &cfg);
    config_free(&cfg);
    return rc;
}

static int cmd_check_config(int argc, char **argv)
{
    ogd_config cfg;
    const char *path = argc > 2 ? argv[2] : NULL;
    if (load_config(path, &cfg) != 0)
        return 2;
    config_dump(&cfg, stdout);
    config_free(&cfg);
    return 0;
}

/* `ogd demo --hdf5`: the demo shots as HDF5 files, ingested through the ingest pipeline
 * (manifest first), then removed. */
static int demo_via_hdf5(const ogd_config *cfg, store_t *store, int64_t n, uint64_t seed)
{
    store_op_t op;
    store_op_init(&op, STORE_RECORDS_COUNT);
    int rc = store_run_sync(store, &op);
    int64_t existing = op.count;
    store_op_cleanup(&op);
    if (rc == 0 && existing > 0) {
        fprintf(stderr, "demo: the database already holds records; nothing added\n");
        return 0;
    }
    json_t *manifest = demo_hdf5_manifest("20230605000000");
    store_op_init(&op, STORE_MANIFEST_PUT);
    op.doc = manifest;
    op.replace = true;
    rc = store_run_sync(store, &op);
    store_op_cleanup(&op);
    json_decref(manifest);
    if (rc) {
        fprintf(stderr, "demo: cannot store the channel manifest\n");
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/demo-hdf5", cfg->server.data_dir);
    mkdir_p(dir);
    char **files = calloc((size_t)n, sizeof(char *));
    int status = files ? 0 : 1;
    for (int64_t i = 0; i < n && !status; i++) {
        files[i] = malloc(4200);
        snprintf(files[i], 4200, "%s/shot-%06lld.h5", dir, (long long)i);
        if (demo_hdf5_write(files[i], seed, i, 320, 240) != 0) {
            fprintf(stderr, "demo: cannot write %s\n", files[i]);
            status = 1;
        }
    }
    if (!status)
        status = ingest_cli_local(cfg, files, (int)n, stderr) == INGEST_EXIT_OK ? 0 : 1;
    for (int64_t i = 0; files && i < n; i++) {
        if (files[i])
            unlink(files[i]);
        free(files[i]);
    }
    free(files);
    rmdir(dir);
    return status;
}

static int cmd_demo(int argc, char **argv)
{
    ogd_config cfg;
    if (load_config(option(argc, argv, "--config"), &cfg) != 0)
        return 2;
    int status = 1;
    char err[512];
    store_t *store = NULL;
    objstore_t *os = NULL;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mkdir_p(cfg.server.data_dir);
    if (flag(argc, argv, "--hdf5")) {
        const char *nh = option(argc, argv, "--records");
        const char *sh = option(argc, argv, "--seed");
        if (store_migrate(cfg.database.url, err, sizeof(err)) != 0 ||
            store_open(cfg.database.url, NULL, &store, err, sizeof(err)) != 0) {
            fprintf(stderr, "demo: %s\n", err);
            goto out;
        }
        status = demo_via_hdf5(&cfg, store, nh ? strtol(nh, NULL, 10) : 200,
                               sh ? strtoull(sh, NULL, 10) : 1);
        if (status == 0 && strncmp(cfg.database.url, "sqlite:", 7) == 0 &&
            demo_create_user(store) != 0)
            status = 1;
        goto out;
    }
    if (store_migrate(cfg.database.url, err, sizeof(err)) != 0 ||
        store_open(cfg.database.url, NULL, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "demo: %s\n", err);
        goto out;
    }
    objstore_options oo;
    objstore_options_from_config(&cfg, &oo);
    oo.cache_max_entries = 0; /* demo only writes */
    if (objstore_prepare(cfg.echo.url, &oo, err, sizeof(err)) != 0 ||
        objstore_open(cfg.echo.url, &oo, &loop, &os, err, sizeof(err)) != 0) {
        fprintf(stderr, "demo: %s\n", err);
        goto out;
    }
    demo_options opts;
    demo_options_default(&opts);
    const char *n = option(argc, argv, "--records");
    const char *seed = option(argc, argv, "--seed");
    if (n)
        opts.records = strtol(n, NULL, 10);
    if (seed)
        opts.seed = strtoull(seed, NULL, 10);
    if (flag(argc, argv, "--no-images"))
        opts.images = false;
    opts.skip_if_not_empty = true;
    opts.image_thumb_w = (uint32_t)cfg.images.thumbnail_size[0];
    opts.image_thumb_h = (uint32_t)cfg.images.thumbnail_size[1];
    int rc = demo_generate(&opts, store, os, &loop, stderr);
    if (rc == DEMO_SKIPPED)
        fprintf(stderr, "demo: the database already holds records; nothing added\n");
    else if (rc != 0)
        goto out;
    /* The demo login exists on the embedded default only, never on a production database. */
    if (strncmp(cfg.database.url, "sqlite:", 7) == 0 && demo_create_user(store) != 0) {
        fprintf(stderr, "demo: could not create the demo user\n");
        goto out;
    }
    status = 0;
out:
    if (os) {
        objstore_close(os, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    store_close(store);
    config_free(&cfg);
    return status;
}

static int cmd_import(int argc, char **argv)
{
    const char *collection = option(argc, argv, "--collection");
    if (!collection) {
        usage(stderr);
        return 2;
    }
    ogd_config cfg;
    if (load_config(option(argc, argv, "--config"), &cfg) != 0)
        return 2;
    char err[512];
    store_t *store = NULL;
    int status = 0;
    mkdir_p(cfg.server.data_dir);
    if (store_migrate(cfg.database.url, err, sizeof(err)) != 0 ||
        store_open(cfg.database.url, NULL, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "import: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-') {
            i++; /* an option and its value */
            continue;
        }
        long n = import_file(store, collection, argv[i], stderr);
        if (n < 0) {
            status = 1;
            break;
        }
        fprintf(stderr, "import: %s: %ld %s documents\n", argv[i], n, collection);
    }
    store_close(store);
    config_free(&cfg);
    return status;
}

/* `ogd ingest`: the files are the arguments that are neither options nor their values. */
static int cmd_ingest(int argc, char **argv)
{
    char **files = calloc((size_t)argc, sizeof(char *));
    int nfiles = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--url") == 0 ||
            strcmp(argv[i], "--token") == 0) {
            i++;
            continue;
        }
        files[nfiles++] = argv[i];
    }
    if (nfiles == 0) {
        free(files);
        usage(stderr);
        return 2;
    }
    int rc;
    const char *url = option(argc, argv, "--url");
    if (url) {
        const char *token = option(argc, argv, "--token");
        rc = ingest_cli_remote(url, token ? token : getenv("OGD_TOKEN"), files, nfiles, stderr);
    } else {
        ogd_config cfg;
        if (load_config(option(argc, argv, "--config"), &cfg) != 0) {
            free(files);
            return 2;
        }
        mkdir_p(cfg.server.data_dir);
        rc = ingest_cli_local(&cfg, files, nfiles, stderr);
        config_free(&cfg);
    }
    free(files);
    return rc;
}

/* ogd user SUB NAME [options] [--config FILE] */
static int cmd_user(int argc, char **argv)
{
    ogd_config cfg;
    if (load_config(option(argc, argv, "--config"), &cfg) != 0)
        return 2;
    char err[512];
    store_t *store = NULL;
    mkdir_p(cfg.server.data_dir);
    if (store_migrate(cfg.database.url, err, sizeof(err)) != 0 ||
        store_open(cfg.database.url, NULL, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "user: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    /* drop --config FILE from the arguments the subcommand sees */
    char **args = calloc((size_t)argc, sizeof(char *));
    int n = 0;
    for (int i = 2; args && i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            i++;
            continue;
        }
        args[n++] = argv[i];
    }
    int rc = args ? user_command(store, n, args, stdin, stdout, stderr) : 1;
    free(args);
    store_close(store);
    config_free(&cfg);
    return rc;
}

/* glibc's allocator, as ogd asks for it unless the environment already says (an empty
 * GLIBC_TUNABLES turns this off): transparent huge pages for the heap, and heap growth
 * and trimming in 32 MiB steps. Requests that build large documents (the description of
 * a file of 20 000 channels: ~100 MB of small blocks) otherwise fault in every 4 KiB page
 * afresh each time: about 3 µs a page on the facility's virtual machines.
 * docs/design.md §11.12. */
#define OGD_GLIBC_TUNABLES "glibc.malloc.hugetlb=1:glibc.malloc.top_pad=33554432"

/* Tunables are read once, when the process starts: so ogd starts itself again with them
 * (same pid, same arguments), and everything it runs (workers, the HDF5 helper) inherits
 * them. Without /proc it carries on as it is. */
static void tune_malloc(char **argv)
{
#if !defined(__SANITIZE_ADDRESS__) /* ASan brings its own allocator */
    if (getenv("GLIBC_TUNABLES"))
        return;
    if (setenv("GLIBC_TUNABLES", OGD_GLIBC_TUNABLES, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("GLIBC_TUNABLES");
#else
    (void)argv;
#endif
}

int main(int argc, char **argv)
{
    tune_malloc(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    /* Internal: the HDF5 parse helper a worker spawns (ingest/parse_proc.h). */
    /* `_hdf5-parse MAX_IN MAX_OUT MAX_DATASET MAX_FILE MAX_CHANNELS [mapped [SKEW [OFFSET
     * LEN]]]` (hdf5_limits, hdf5_input) */
    if (strcmp(cmd, "_hdf5-parse") == 0 && argc >= 7 && argc <= 11 && argc != 10) {
#ifdef OGD_TEST_HOOKS
        /* Tests of what happens to an ingest still in progress (a stop, a client that
         * leaves): the helper never answers, until it is killed. */
        if (getenv("OGD_ENABLE_TEST_HOOKS") && getenv("OGD_TEST_HDF5_STALL"))
            for (;;)
                pause();
#endif
        uint64_t max_in, max_out;
        hdf5_limits lim;
        if (!parse_u64(argv[2], &max_in) || !parse_u64(argv[3], &max_out) ||
            !parse_u64(argv[4], &lim.max_dataset_bytes) ||
            !parse_u64(argv[5], &lim.max_file_bytes) || !parse_u64(argv[6], &lim.max_channels) ||
            max_in > SIZE_MAX || max_out > SIZE_MAX)
            return 1;
        hdf5_input in = {argc == 11, 0, 0, 0};
        if (argc >= 9) {
            uint64_t skew;
            if (!parse_u64(argv[8], &skew) || skew > 7)
                return 1;
            in.skew = (unsigned)skew;
        }
        if (argc == 11 && (!parse_u64(argv[9], &in.offset) || !parse_u64(argv[10], &in.len)))
            return 1;
        return hdf5_parse_main((size_t)max_in, (size_t)max_out, &lim,
                               argc >= 8 && strcmp(argv[7], "mapped") == 0, &in);
    }
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(argc, argv);
    if (strcmp(cmd, "demo") == 0)
        return cmd_demo(argc, argv);
    if (strcmp(cmd, "import") == 0)
        return cmd_import(argc, argv);
    if (strcmp(cmd, "ingest") == 0)
        return cmd_ingest(argc, argv);
    if (strcmp(cmd, "user") == 0)
        return cmd_user(argc, argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ogd %s\n", OGD_VERSION_TEXT);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "ogd: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
