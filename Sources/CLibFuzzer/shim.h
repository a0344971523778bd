// libFuzzer's driver, linked in by swiftc -sanitize=fuzzer (compiler-rt's libclang_rt.fuzzer). Only the
// classbox-libfuzz development tool uses it (scripts/fuzz --libfuzzer).
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
