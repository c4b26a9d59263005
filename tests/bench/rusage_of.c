/* Run a command and report its own CPU time and peak RSS:
 *   rusage_of CMD [ARGS...]
 * prints "rusage user_us=U sys_us=S maxrss_kb=M status=X" on stderr after
 * the command's own output, and exits with the command's status.
 * Why a helper: Linux keeps a process's peak RSS across fork and exec, so a
 * command started straight from a big parent (the Python benchmark) would
 * report the parent's peak; started from this small process it reports its
 * own. With no arguments (as run by `make bench`) it prints usage, exits 0. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        puts("usage: rusage_of CMD [ARGS...]  (prints CPU time and peak RSS of CMD on stderr)");
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("rusage_of: fork");
        return 127;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror("rusage_of: exec");
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) {
        perror("rusage_of: wait4");
        return 127;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    fprintf(stderr, "rusage user_us=%lld sys_us=%lld maxrss_kb=%ld status=%d\n",
            (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss, code);
    return code;
}
