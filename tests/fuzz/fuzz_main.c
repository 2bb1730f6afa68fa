/* fuzz_main.c — a libFuzzer harness for one target of targets.c, chosen at build time with
 * -DS2S_FUZZ_TARGET="name" (tests/fuzz/CMakeLists.txt builds one binary fuzz_NAME per target). */
#include "targets.c"

#ifndef S2S_FUZZ_TARGET
#error "define S2S_FUZZ_TARGET"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const s2s_fuzz_target *t;
    if (!t && !(t = s2s_fuzz_find(S2S_FUZZ_TARGET))) {
        fprintf(stderr, "no fuzz target %s\n", S2S_FUZZ_TARGET);
        abort();
    }
    return t->fn(data, size);
}
