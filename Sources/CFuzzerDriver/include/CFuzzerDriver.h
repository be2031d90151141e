#ifndef SWITCHYARD_CFUZZERDRIVER_H
#define SWITCHYARD_CFUZZERDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry for programs that keep their own main (present when linked with
/// -sanitize=fuzzer; referenced only in such builds).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
