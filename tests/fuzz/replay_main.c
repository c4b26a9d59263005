/* Replays fuzz inputs through a harness without libFuzzer, for `make test`.
 *
 *   fuzz_NAME [DIR|FILE]...
 *
 * With no argument the binary replays tests/fuzz/corpus/NAME and
 * tests/fuzz/regress/NAME (NAME from its own file name, fuzz_NAME), so the
 * test runner, which starts unit binaries without arguments from the
 * repository root, replays exactly the committed inputs.
 *
 * Every input runs in a child process: a crash, sanitizer report or leak
 * becomes one "not ok" line naming the input, and the inputs after it are
 * still replayed. Prints TAP ("ok N - NAME/file"). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Larger than any harness's -max_len: a regress input must replay whole. */
#define REPLAY_MAX (1u << 20)

static int tests_run, tests_failed;

static int replay_file(const char *path, const char *label)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("not ok %d - %s # cannot open: %s\n", ++tests_run, label, strerror(errno));
        tests_failed++;
        return -1;
    }
    uint8_t *buf = malloc(REPLAY_MAX + 1);
    size_t n = buf ? fread(buf, 1, REPLAY_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > REPLAY_MAX) {
        free(buf);
        printf("not ok %d - %s # larger than %u bytes\n", ++tests_run, label, REPLAY_MAX);
        tests_failed++;
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* libFuzzer hands the harness a buffer of exactly the input's size;
         * a right-sized copy lets ASan catch a read one byte past it. */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact)
            _exit(3);
        memcpy(exact, buf, n);
        free(buf);
        (void)LLVMFuzzerTestOneInput(exact, n);
        free(exact);
        exit(0); /* exit, not _exit: LeakSanitizer runs at exit */
    }
    free(buf);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        printf("not ok %d - %s # fork/wait failed\n", ++tests_run, label);
        tests_failed++;
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok %d - %s\n", ++tests_run, label);
        return 0;
    }
    if (WIFSIGNALED(status))
        printf("not ok %d - %s # killed by signal %d\n", ++tests_run, label, WTERMSIG(status));
    else
        printf("not ok %d - %s # exit status %d\n", ++tests_run, label, WEXITSTATUS(status));
    tests_failed++;
    return -1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files of dir in name order (the TAP numbering stays stable), README
 * and dot files excepted. */
static void replay_dir(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "README", 6) == 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        names[n] = strdup(e->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, by_name);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    for (size_t i = 0; i < n; i++) {
        char path[4096], label[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        /* label: corpus/store/seed1 or regress/store/crash-... */
        snprintf(label, sizeof label, "%s/%s/%s", strstr(dir, "regress") ? "regress" : "corpus",
                 name[0] ? name : base, names[i]);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            replay_file(path, label);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    const char *prog = strrchr(argv[0], '/');
    prog = prog ? prog + 1 : argv[0];
    const char *name = strncmp(prog, "fuzz_", 5) == 0 ? prog + 5 : prog;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            struct stat sb;
            if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode))
                replay_dir(argv[i], name);
            else
                replay_file(argv[i], argv[i]);
        }
    } else {
        const char *root = getenv("CDNAGENT_ROOT");
        char dir[4096];
        snprintf(dir, sizeof dir, "%s%stests/fuzz/corpus/%s", root ? root : "", root ? "/" : "",
                 name);
        replay_dir(dir, name);
        snprintf(dir, sizeof dir, "%s%stests/fuzz/regress/%s", root ? root : "", root ? "/" : "",
                 name);
        replay_dir(dir, name);
    }
    if (tests_run == 0) {
        printf("not ok 1 - %s: no input to replay\n", name);
        return 1;
    }
    printf("1..%d\n", tests_run);
    return tests_failed ? 1 : 0;
}
