// stb_image's implementation, compiled here from Debian's header (libstb-dev) so that the
// fuzz target's decoding runs under the same ASan/UBSan instrumentation as gcnet's checks
// (the shared libstb is not instrumented). The library itself links the shared libstb.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>
