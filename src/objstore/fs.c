/*
 * fs.c: the filesystem back end of the object store (the embedded default).
 *
 * An object is the file <root>/<key>, root being the directory of the file:// URL (plus
 * the bucket name when one is configured), so the tree has the bucket's layout. Keys
 * reach this file validated by objstore.c (no "..", no leading '/', no temp names).
 *
 * Each op becomes one uv_work_t: the file system calls run on the libuv thread pool and
 * the result is handed back with objstore_op_done from the after-work callback on the
 * loop. The state (root path) is immutable after open, so threads share it unlocked.
 * Cancelling uses uv_cancel, which only succeeds before a thread has picked the work up.
 *
 * Writes are atomic: a temp file ".ogd-tmp-<pid>-<n>" in the object's directory (the
 * same file system, so rename is atomic), write, fsync, rename over the key, fsync of
 * the directory. Readers see the old object or the new one, never a part; concurrent
 * writers of one key leave one complete version. Deletes remove directories left empty
 * up to the root, so a put retries (a few times) when a concurrent delete removes its
 * directory or its temp file. Temp files orphaned by a crash are not objects: they are
 * never read or counted, and a delete of their directory removes them.
 */
#include "objstore/backend.h"
#include "util/pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_TMP_PREFIX ".ogd-tmp-"
/* Larger objects are refused with -EFBIG rather than read into memory. */
#define FS_MAX_OBJECT ((size_t)4 << 30)
#define FS_PUT_ATTEMPTS 4

typedef struct fs_state {
    uv_loop_t *loop;
    size_t rootlen;
    char root[PATH_MAX]; /* absolute, no trailing '/' */
} fs_state;

typedef struct fs_job {
    uv_work_t work;
    fs_state *fs;
    objstore_op *op;
} fs_job;

static atomic_ulong tmp_counter;

static bool is_tmp_name(const char *name)
{
    return strncmp(name, FS_TMP_PREFIX, strlen(FS_TMP_PREFIX)) == 0;
}

/* Creates every missing directory of path (a mutable absolute or relative path). */
static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0750);
        int e = errno;
        *p = '/';
        if (rc != 0 && e != EEXIST)
            return -e;
    }
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int full_path(const fs_state *fs, const char *key, char *out)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", fs->root, key);
    return n >= 0 && n < PATH_MAX ? 0 : -ENAMETOOLONG;
}

/* Removes the directories above path that are empty, up to (not including) the root. */
static void prune_parents(const fs_state *fs, const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) <= fs->rootlen)
            return;
        *slash = '\0';
        if (rmdir(dir) != 0)
            return;
    }
}

/* ---- operations (thread pool) ---- */

static void do_get(const fs_state *fs, objstore_op *op)
{
    char path[PATH_MAX];
    op->status = full_path(fs, op->key, path);
    if (op->status != 0)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        op->status = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        op->status = -errno;
    } else if (!S_ISREG(st.st_mode)) {
        op->status = -ENOENT; /* a directory is a prefix, not an object */
    } else if ((uint64_t)st.st_size > FS_MAX_OBJECT) {
        op->status = -EFBIG;
    } else {
        objstore_blob_t *b = objstore_blob_new((size_t)st.st_size);
        size_t got = 0;
        if (!b)
            op->status = -ENOMEM;
        while (b && got < b->len) {
            ssize_t r = read(fd, b->data + got, b->len - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                op->status = r < 0 ? -errno : -EIO; /* shrank under us: not our writer */
                break;
            }
            got += (size_t)r;
        }
        if (op->status == 0)
            op->blob = b;
        else
            objstore_blob_unref(b);
    }
    close(fd);
}

static void do_head(const fs_state *fs, objstore_op *op)
{
    char path[PATH_MAX];
    op->status = full_path(fs, op->key, path);
    if (op->status != 0)
        return;
    struct stat st;
    if (stat(path, &st) != 0)
        op->status = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
    else if (!S_ISREG(st.st_mode))
        op->status = -ENOENT;
    else
        op->size = (uint64_t)st.st_size;
}

static int write_all(int fd, const unsigned char *bytes, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, bytes + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        done += (size_t)w;
    }
    return 0;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse it */
        close(fd);
    }
}

/* One attempt of a put. -ENOENT means a concurrent delete removed the directory or the
 * temp file: worth another attempt. */
static int put_once(const char *path, size_t dirlen, const objstore_op *op)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    memcpy(dir, path, dirlen);
    dir[dirlen] = '\0';
    int n = snprintf(tmp, sizeof(tmp), "%s/" FS_TMP_PREFIX "%ld-%lu", dir, (long)getpid(),
                     atomic_fetch_add(&tmp_counter, 1));
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0 && errno == ENOENT) {
        int rc = mkdir_p(dir);
        if (rc != 0)
            return rc;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    }
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, op->bytes, op->len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    fsync_dir(dir);
    return 0;
}

static void do_put(const fs_state *fs, objstore_op *op)
{
    char path[PATH_MAX];
    op->status = full_path(fs, op->key, path);
    if (op->status != 0)
        return;
    size_t dirlen = (size_t)(strrchr(path, '/') - path);
    for (int attempt = 0; attempt < FS_PUT_ATTEMPTS; attempt++) {
        op->status = put_once(path, dirlen, op);
        if (op->status != -ENOENT)
            break;
    }
}

static void do_delete(const fs_state *fs, objstore_op *op)
{
    char path[PATH_MAX];
    op->status = full_path(fs, op->key, path);
    if (op->status != 0)
        return;
    if (unlink(path) != 0) {
        /* Absent (or a directory, which is no object): deleted already, as S3 says. */
        if (errno != ENOENT && errno != ENOTDIR && errno != EISDIR)
            op->status = -errno;
        return;
    }
    prune_parents(fs, path);
}

/* Removes dirfd/name, recursively when it is a directory, counting the objects removed.
 * Keeps going after errors; returns the first. */
static int remove_tree_at(int parent, const char *name, size_t *count)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(parent, name, 0) != 0)
            return errno == ENOENT ? 0 : -errno;
        if (!is_tmp_name(name))
            (*count)++;
        return 0;
    }
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0 && rc == 0)
                rc = -errno;
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = remove_tree_at(dirfd(d), e->d_name, count);
        if (r != 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    /* ENOTEMPTY: a concurrent put wrote a new object meanwhile; it stays. */
    if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT && errno != ENOTEMPTY &&
        rc == 0)
        rc = -errno;
    return rc;
}

static void do_delete_prefix(const fs_state *fs, objstore_op *op)
{
    char path[PATH_MAX];
    op->status = full_path(fs, op->key, path);
    if (op->status != 0)
        return;
    size_t len = strlen(path);
    if (path[len - 1] == '/') {
        /* Every key under a directory: that tree. A file of that name is no match. */
        path[len - 1] = '\0';
        struct stat st;
        if (lstat(path, &st) != 0) {
            if (errno != ENOENT && errno != ENOTDIR)
                op->status = -errno;
            return;
        }
        if (!S_ISDIR(st.st_mode))
            return;
        op->status = remove_tree_at(AT_FDCWD, path, &op->removed);
        prune_parents(fs, path);
        return;
    }
    /* Otherwise: the entries of the prefix's directory whose names start with its last
     * segment, each a file or a whole tree. */
    char *slash = strrchr(path, '/');
    *slash = '\0';
    const char *stem = slash + 1;
    size_t stemlen = strlen(stem);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            op->status = -errno;
        return;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        op->status = -errno;
        close(fd);
        return;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0 && op->status == 0)
                op->status = -errno;
            break;
        }
        if (strncmp(e->d_name, stem, stemlen) != 0 || is_tmp_name(e->d_name) ||
            strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = remove_tree_at(dirfd(d), e->d_name, &op->removed);
        if (r != 0 && op->status == 0)
            op->status = r;
    }
    closedir(d);
    *slash = '/';
    prune_parents(fs, path);
}

static void fs_work(uv_work_t *w)
{
    pool_work_begins();
    fs_job *job = w->data;
    objstore_op *op = job->op;
    switch (op->kind) {
    case OBJSTORE_OP_GET:
        do_get(job->fs, op);
        break;
    case OBJSTORE_OP_HEAD:
        do_head(job->fs, op);
        break;
    case OBJSTORE_OP_PUT:
        do_put(job->fs, op);
        break;
    case OBJSTORE_OP_DELETE:
        do_delete(job->fs, op);
        break;
    case OBJSTORE_OP_DELETE_PREFIX:
        do_delete_prefix(job->fs, op);
        break;
    }
}

/* ---- vtable (loop thread) ---- */

static void fs_after_work(uv_work_t *w, int status)
{
    pool_work_ends(status);
    fs_job *job = w->data;
    objstore_op *op = job->op;
    op->backend_data = NULL;
    free(job);
    if (status == UV_ECANCELED) {
        op->status = -ECANCELED;
        op->removed = 0;
    }
    objstore_op_done(op);
}

static int fs_start(void *state, objstore_op *op)
{
    fs_state *fs = state;
    fs_job *job = calloc(1, sizeof(*job));
    if (!job)
        return -ENOMEM;
    job->fs = fs;
    job->op = op;
    job->work.data = job;
    op->status = 0;
    int rc = pool_queue_work(fs->loop, &job->work, fs_work, fs_after_work);
    if (rc != 0) {
        free(job);
        return rc;
    }
    op->backend_data = job;
    return 0;
}

static int fs_cancel(void *state, objstore_op *op)
{
    (void)state;
    fs_job *job = op->backend_data;
    if (!job)
        return -EINVAL;
    return uv_cancel((uv_req_t *)&job->work) == 0 ? 0 : -EBUSY;
}

static void fs_close(void *state)
{
    free(state);
}

/* Runs on the loop thread at worker start (mkdir, realpath): before any request. */
static int fs_open(uv_loop_t *loop, const char *url, const objstore_options *opts, void **state,
                   char *err, size_t errlen)
{
    const char *path = strstr(url, "://") + 3;
    const char *bucket = opts->bucket && *opts->bucket ? opts->bucket : NULL;
    if (!*path) {
        snprintf(err, errlen, "echo.url: no directory in \"%.200s\"", url);
        return -EINVAL;
    }
    if (bucket && (strchr(bucket, '/') || objstore_key_check(bucket) != 0)) {
        snprintf(err, errlen, "echo.bucket_name: not usable as a directory name: \"%.200s\"",
                 bucket);
        return -EINVAL;
    }
    char dir[PATH_MAX];
    int n = bucket ? snprintf(dir, sizeof(dir), "%s/%s", path, bucket)
                   : snprintf(dir, sizeof(dir), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        snprintf(err, errlen, "echo.url: directory path too long");
        return -ENAMETOOLONG;
    }
    int rc = mkdir_p(dir);
    if (rc != 0) {
        snprintf(err, errlen, "echo.url: cannot create directory %s: %s", dir, strerror(-rc));
        return rc;
    }
    fs_state *fs = calloc(1, sizeof(*fs));
    if (!fs) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (!realpath(dir, fs->root)) {
        rc = -errno;
        snprintf(err, errlen, "echo.url: cannot resolve directory %s: %s", dir, strerror(-rc));
        free(fs);
        return rc;
    }
    struct stat st;
    if (stat(fs->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "echo.url: %s is not a directory", fs->root);
        free(fs);
        return -ENOTDIR;
    }
    fs->rootlen = strlen(fs->root);
    if (fs->rootlen == 1) { /* "/": keep the join "<root>/<key>" single-slashed */
        fs->root[0] = '\0';
        fs->rootlen = 0;
    }
    fs->loop = loop;
    *state = fs;
    return 0;
}

static const char *const fs_schemes[] = {"file", NULL};

const objstore_backend objstore_fs_backend = {
    .name = "fs",
    .schemes = fs_schemes,
    .open = fs_open,
    .start = fs_start,
    .cancel = fs_cancel,
    .close = fs_close,
};
