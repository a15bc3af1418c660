/*
 * The C harness for libruv_temporal.a: the firmware's temporal_task.c flow
 * run from real C against the real archive, plus every bad input the ABI
 * promises to refuse.
 *
 * Why C and not a Rust test calling the functions: the things that break
 * at this boundary are C things (the generated header compiling under
 * -Werror, struct layout, int32_t being `long` on Xtensa, the float ABI of
 * the archive matching the C code, symbols resolving in a bare-metal
 * link). The same source runs on the host (gcc, valgrind), on emulated
 * RISC-V (qemu, the ESP32-C3/C6 instruction sets) and is compiled for
 * Xtensa.
 *
 * It prints one line per check ("ok" or "FAILED"), `logits ...` lines the
 * xtask compares across targets, `measure ...` lines `cargo xtask size`
 * reads (and a `measure-csi` line: instructions per ruv_temporal_push_csi),
 * and exits non-zero when any check failed.
 *
 * The blob, frames and golden logits come from harness_data.h, which
 * `cargo xtask c-harness` generates from adapters/cli/assets/ and
 * tests/golden/c_harness_logits.csv (bare metal has no filesystem, so the
 * bytes are compiled in); the raw CSI packets of a recorded log and what
 * the host crates compute for them come from harness_csi.h.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ruv_temporal.h"

#include "harness_csi.h"
#include "harness_data.h"
#include "harness_platform.h"

_Static_assert(HARNESS_CSI_N_CLASSES == HARNESS_N_CLASSES,
               "the CSI run's expectations come from the same model");

/* The host model and this run may differ by summation order only, and
 * rounding grows with the logits (a trained model's reach ~30), so the
 * difference is measured in units of max(1, largest |logit|) (measured:
 * at most 2e-6 against the golden file, cargo xtask c-harness). */
#define TOLERANCE 1e-5f

/* temporal_task.c's schedule (the golden file was computed for it). */
#define STREAM_WINDOW 64u
#define PERIOD 16u
#define FULL_WINDOW 256u
#define NODE_ID 7u
#define FRAME_INTERVAL_US 50000u /* 20 frames/s */

#define PACKET_LEN RUV_TEMPORAL_PACKET_LEN
#define PACKET_MAGIC 0xC5110007u

static unsigned failures;
static unsigned checks;

/* ------------------------------------------------------------- reporting */

static const char *code_name(int32_t code) {
    switch (code) {
    case RUV_TEMPORAL_OK:
        return "OK";
    case RUV_TEMPORAL_FAIL:
        return "FAIL";
    case RUV_TEMPORAL_ERR_NO_MEM:
        return "NO_MEM";
    case RUV_TEMPORAL_ERR_INVALID_ARG:
        return "INVALID_ARG";
    case RUV_TEMPORAL_ERR_INVALID_STATE:
        return "INVALID_STATE";
    case RUV_TEMPORAL_ERR_INVALID_SIZE:
        return "INVALID_SIZE";
    case RUV_TEMPORAL_ERR_NOT_SUPPORTED:
        return "NOT_SUPPORTED";
    case RUV_TEMPORAL_ERR_INVALID_CRC:
        return "INVALID_CRC";
    case RUV_TEMPORAL_ERR_INVALID_VERSION:
        return "INVALID_VERSION";
    default:
        return "?";
    }
}

static void check(int passed, const char *what) {
    checks++;
    if (passed) {
        printf("ok     %s\n", what);
    } else {
        failures++;
        printf("FAILED %s\n", what);
    }
}

/* `INVALID_ARG (0x102)`: codes are esp_err_t values, which ESP-IDF
 * prints in hex; ESP_FAIL (-1) stays decimal. */
static const char *code_text(int32_t code, char *buffer, size_t size) {
    if (code < 0) {
        snprintf(buffer, size, "%s (%" PRId32 ")", code_name(code), code);
    } else {
        snprintf(buffer, size, "%s (0x%03" PRIx32 ")", code_name(code), (uint32_t)code);
    }
    return buffer;
}

/* A call that must return `expected`; the line shows what it returned. */
static void check_code(const char *what, int32_t got, int32_t expected) {
    char got_text[40];
    char expected_text[40];
    checks++;
    if (got == expected) {
        printf("ok     %s -> %s\n", what, code_text(got, got_text, sizeof got_text));
    } else {
        failures++;
        printf("FAILED %s -> %s, expected %s\n", what, code_text(got, got_text, sizeof got_text),
               code_text(expected, expected_text, sizeof expected_text));
    }
}

static uint32_t float_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

/* Prints the logits bit-exactly (xtask compares targets) and readably. */
static void print_logits(const char *run, uint32_t pushed, const float *logits) {
    printf("logits %s %" PRIu32 " bits", run, pushed);
    for (uint32_t c = 0; c < HARNESS_N_CLASSES; c++) {
        printf(" %08" PRIx32, float_bits(logits[c]));
    }
    printf(" values");
    for (uint32_t c = 0; c < HARNESS_N_CLASSES; c++) {
        printf(" %.9g", (double)logits[c]);
    }
    printf("\n");
}

/* ------------------------------------------------------------ the packet */

/* CRC-32/IEEE (reflected, polynomial 0xEDB88320), bit by bit: written here
 * independently of the library so the check means something. */
static uint32_t crc32_ieee(const uint8_t *bytes, size_t len) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= bytes[i];
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return crc ^ 0xFFFFFFFFu;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static float le_float(const uint8_t *p) {
    uint32_t bits = le32(p);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* The library's encoder, in one place so the rest of the harness does not
 * depend on its exact parameter list. */
static int32_t encode(const float *logits, uint32_t n_classes, uint8_t node_id, uint64_t ts_us,
                      uint32_t seq, uint8_t *out, size_t out_len) {
    return ruv_temporal_encode_packet(logits, n_classes, node_id, ts_us, seq, out, out_len);
}

/* Decodes `bytes` field by field from the wire layout and checks every
 * field against what the packet must say about `logits`. */
static int packet_matches(const uint8_t *bytes, const float *logits, uint8_t node_id, uint64_t ts_us,
                          uint32_t seq) {
    uint32_t argmax = 0;
    for (uint32_t c = 1; c < HARNESS_N_CLASSES; c++) {
        if (logits[c] > logits[argmax]) {
            argmax = c;
        }
    }
    float second = -INFINITY;
    for (uint32_t c = 0; c < HARNESS_N_CLASSES; c++) {
        if (c != argmax && logits[c] > second) {
            second = logits[c];
        }
    }
    float margin = logits[argmax] - second;
    int reserved_zero = bytes[9] == 0 && bytes[10] == 0 && bytes[11] == 0 && bytes[25] == 0 &&
                        bytes[26] == 0 && bytes[27] == 0;
    return le32(bytes) == PACKET_MAGIC && le16(bytes + 4) == 1 &&
           le16(bytes + 6) == HARNESS_N_CLASSES && bytes[8] == node_id && le64(bytes + 12) == ts_us &&
           le32(bytes + 20) == seq && bytes[24] == argmax && reserved_zero &&
           float_bits(le_float(bytes + 28)) == float_bits(logits[argmax]) &&
           le_float(bytes + 32) == margin && le32(bytes + 36) == crc32_ieee(bytes, 36);
}

/* ------------------------------------------------------- the normal flow */

static const float *asset_frame(uint32_t index) {
    return &harness_frames[(size_t)(index % HARNESS_FRAME_COUNT) * HARNESS_INPUT_DIM];
}

/* max |a - b| / max(1, largest |logit| of either); NaN if either is NaN. */
static float scaled_diff(const float *a, const float *b) {
    float worst = 0.0f;
    float scale = 1.0f;
    for (uint32_t c = 0; c < HARNESS_N_CLASSES; c++) {
        float diff = fabsf(a[c] - b[c]);
        if (!(diff <= worst)) {
            worst = diff; /* also catches NaN */
        }
        scale = fmaxf(scale, fmaxf(fabsf(a[c]), fabsf(b[c])));
    }
    return worst / scale;
}

/* The golden row for (`run`, `pushed`), or NULL. */
static const harness_golden_t *golden_row(const char *run, uint32_t window_len, uint32_t pushed) {
    for (size_t i = 0; i < HARNESS_GOLDEN_COUNT; i++) {
        const harness_golden_t *row = &harness_golden[i];
        if (strcmp(row->run, run) == 0 && row->window_len == window_len && row->pushed == pushed) {
            return row;
        }
    }
    return NULL;
}

static void compare_with_golden(const char *run, uint32_t window_len, uint32_t pushed,
                                const float *logits) {
    char what[96];
    const harness_golden_t *row = golden_row(run, window_len, pushed);
    if (row == NULL) {
        snprintf(what, sizeof what, "%s: golden logits exist after %" PRIu32 " frames", run, pushed);
        check(0, what);
        return;
    }
    float err = scaled_diff(logits, row->logits);
    snprintf(what, sizeof what, "%s: logits after %" PRIu32 " frames match the Rust model (%.2g of scale)", run,
             pushed, (double)err);
    check(err <= TOLERANCE, what);
}

/* temporal_task.c: a ring of STREAM_WINDOW frames, classify every PERIOD
 * frames, send a packet each time. */
static void stream_run(void) {
    ruv_temporal_ctx_t *ctx = NULL;
    int32_t code = ruv_temporal_init(harness_blob, sizeof harness_blob, HARNESS_INPUT_DIM,
                                     STREAM_WINDOW, HARNESS_N_CLASSES, &ctx);
    check_code("stream: init with the default model", code, RUV_TEMPORAL_OK);
    if (code != RUV_TEMPORAL_OK) {
        return;
    }
    uint32_t seq = 0;
    unsigned classified = 0;
    int all_pushed = 1;
    int packets_ok = 1;
    for (uint32_t pushed = 1; pushed <= HARNESS_FRAME_COUNT; pushed++) {
        all_pushed &= ruv_temporal_push(ctx, asset_frame(pushed - 1)) == RUV_TEMPORAL_OK;
        if (pushed % PERIOD != 0) {
            continue;
        }
        float logits[HARNESS_N_CLASSES];
        size_t heap_before = platform_heap_live();
        platform_heap_reset_peak();
        uint32_t start = platform_instret();
        code = ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES);
        uint32_t instructions = platform_instret() - start;
        if (code != RUV_TEMPORAL_OK) {
            check_code("stream: classify", code, RUV_TEMPORAL_OK);
            continue;
        }
        if (platform_can_measure() && pushed <= STREAM_WINDOW) {
            /* How the cost grows with the frames in the ring. */
            printf("measure-scaling frames=%" PRIu32 " classify_heap=%zu instructions=%" PRIu32 "\n",
                   pushed, platform_heap_peak() - heap_before, instructions);
        }
        classified++;
        print_logits("stream", pushed, logits);
        compare_with_golden("stream", STREAM_WINDOW, pushed, logits);
        uint8_t packet[PACKET_LEN];
        uint64_t ts_us = (uint64_t)pushed * FRAME_INTERVAL_US;
        code = encode(logits, HARNESS_N_CLASSES, NODE_ID, ts_us, seq, packet, sizeof packet);
        packets_ok &= code == RUV_TEMPORAL_OK && packet_matches(packet, logits, NODE_ID, ts_us, seq);
        seq++;
    }
    check(all_pushed, "stream: every frame pushed");
    check(classified == HARNESS_FRAME_COUNT / PERIOD, "stream: classified every PERIOD frames");
    check(packets_ok, "stream: every packet decodes (magic, version, fields, CRC-32)");
    ruv_temporal_destroy(ctx);
}

/* The device budget's point: 256 frames in the ring. Measures heap, stack
 * and instructions where the platform can. */
static void full_ring_run(void) {
    size_t heap_before = platform_heap_live();
    platform_heap_reset_peak();
    ruv_temporal_ctx_t *ctx = NULL;
    int32_t code = ruv_temporal_init(harness_blob, sizeof harness_blob, HARNESS_INPUT_DIM,
                                     FULL_WINDOW, HARNESS_N_CLASSES, &ctx);
    check_code("full: init with a 256-frame ring", code, RUV_TEMPORAL_OK);
    if (code != RUV_TEMPORAL_OK) {
        return;
    }
    int all_pushed = 1;
    for (uint32_t i = 0; i < FULL_WINDOW; i++) {
        all_pushed &= ruv_temporal_push(ctx, asset_frame(i)) == RUV_TEMPORAL_OK;
    }
    check(all_pushed, "full: 256 frames pushed");
    size_t heap_resident = platform_heap_live() - heap_before;
    size_t init_peak = platform_heap_peak() - heap_before;
    platform_heap_reset_peak();

    float logits[HARNESS_N_CLASSES];
    platform_stack_paint();
    uint32_t start = platform_instret();
    code = ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES);
    uint32_t instructions = platform_instret() - start;
    size_t stack = platform_stack_used();
    size_t classify_peak = platform_heap_peak() - heap_before;
    size_t heap_peak = classify_peak > init_peak ? classify_peak : init_peak;
    size_t classify_heap = classify_peak - heap_resident;
    check_code("full: classify", code, RUV_TEMPORAL_OK);
    if (code == RUV_TEMPORAL_OK) {
        print_logits("full", FULL_WINDOW, logits);
        compare_with_golden("full", FULL_WINDOW, FULL_WINDOW, logits);
    }
    ruv_temporal_destroy(ctx);
    if (platform_can_measure()) {
        check(!platform_heap_lost_track(), "full: every allocation tracked");
        check(platform_heap_live() == heap_before, "full: destroy freed everything");
        printf("measure-scaling frames=%u classify_heap=%zu instructions=%" PRIu32 "\n", FULL_WINDOW,
               classify_heap, instructions);
        printf("measure frames=%u heap_resident=%zu heap_peak=%zu stack_peak=%zu "
               "instructions=%" PRIu32 "\n",
               FULL_WINDOW, heap_resident, heap_peak, stack, instructions);
    }
}

/* --------------------------------------------------------- bad inputs */

static int32_t init_with(const uint8_t *blob, size_t len, ruv_temporal_ctx_t **out) {
    return ruv_temporal_init(blob, len, HARNESS_INPUT_DIM, STREAM_WINDOW, HARNESS_N_CLASSES, out);
}

/* Inits from a copy of the blob with `width` bytes at `offset` replaced
 * by `value` (little-endian), the CRC recomputed when `fix_crc`, and the
 * first `len` bytes passed; expects `expected`. */
static void corrupt_blob(const char *what, size_t offset, uint32_t value, size_t width, int fix_crc,
                         size_t len, int32_t expected) {
    uint8_t *copy = malloc(sizeof harness_blob);
    if (copy == NULL) {
        check(0, "allocate a blob copy");
        return;
    }
    memcpy(copy, harness_blob, sizeof harness_blob);
    for (size_t i = 0; i < width; i++) {
        copy[offset + i] = (uint8_t)(value >> (8 * i));
    }
    if (fix_crc) {
        uint32_t crc = crc32_ieee(copy, sizeof harness_blob - 4);
        for (int i = 0; i < 4; i++) {
            copy[sizeof harness_blob - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
        }
    }
    ruv_temporal_ctx_t *ctx = NULL;
    int32_t code = init_with(copy, len, &ctx);
    check_code(what, code, expected);
    if (code == RUV_TEMPORAL_OK) {
        ruv_temporal_destroy(ctx);
    }
    free(copy);
}

static void bad_init(void) {
    ruv_temporal_ctx_t *ctx = NULL;
    const uint8_t *blob = harness_blob;
    const size_t len = sizeof harness_blob;
    const uint32_t dim = HARNESS_INPUT_DIM;
    const uint32_t classes = HARNESS_N_CLASSES;

    check_code("init weights=NULL", ruv_temporal_init(NULL, len, dim, 64, classes, &ctx),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("init out_ctx=NULL", ruv_temporal_init(blob, len, dim, 64, classes, NULL),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("init input_dim=0", ruv_temporal_init(blob, len, 0, 64, classes, &ctx),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("init window_len=0", ruv_temporal_init(blob, len, dim, 0, classes, &ctx),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("init n_classes=0", ruv_temporal_init(blob, len, dim, 64, 0, &ctx),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("init input_dim mismatch (15)", ruv_temporal_init(blob, len, dim - 1, 64, classes, &ctx),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("init n_classes mismatch (5)", ruv_temporal_init(blob, len, dim, 64, classes + 1, &ctx),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check(ctx == NULL, "init: a failed init never wrote *out_ctx");
    if (sizeof(size_t) == 4) {
        /* 2^30 frames x 16 floats overflow a 32-bit address space. (On a
         * 64-bit host the ring would merely be huge, so it is not tried.) */
        check_code("init window_len=2^30 on a 32-bit target",
                   ruv_temporal_init(blob, len, dim, 1u << 30, classes, &ctx),
                   RUV_TEMPORAL_ERR_INVALID_SIZE);
    }

    check_code("blob empty (len 0)", init_with(blob, 0, &ctx), RUV_TEMPORAL_ERR_INVALID_SIZE);
    check_code("blob too short (27 bytes)", init_with(blob, 27, &ctx), RUV_TEMPORAL_ERR_INVALID_SIZE);
    check_code("blob truncated (len - 1)", init_with(blob, len - 1, &ctx), RUV_TEMPORAL_ERR_INVALID_SIZE);
    corrupt_blob("blob bad magic", 0, 0x00, 1, 0, len, RUV_TEMPORAL_ERR_INVALID_ARG);
    corrupt_blob("blob version 3", 4, 3, 2, 0, len, RUV_TEMPORAL_ERR_INVALID_VERSION);
    /* The header is 24 bytes in version 1 and 32 in version 2 (the options
     * block), so the offsets below follow the bundled blob's version. */
    const uint16_t version = le16(blob + 4);
    const size_t header = version == 2 ? 32 : 24;
    /* The body read under the other version's header: the 8 bytes of
     * difference make the declared length disagree with the blob's. */
    corrupt_blob(version == 2 ? "blob version 1 on a version-2 body" : "blob version 2 on a version-1 body",
                 4, version == 2 ? 1 : 2, 2, 0, len, RUV_TEMPORAL_ERR_INVALID_SIZE);
    corrupt_blob("blob reserved flag bit 1", 6, 0x02, 1, 0, len, RUV_TEMPORAL_ERR_INVALID_VERSION);
    corrupt_blob("blob reserved byte 7", 7, 0x01, 1, 0, len, RUV_TEMPORAL_ERR_INVALID_VERSION);
    corrupt_blob("blob weights_len field + 4", 20, (uint32_t)(len - header - 4 + 4), 4, 0, len,
                 RUV_TEMPORAL_ERR_INVALID_SIZE);
    if (version == 2) {
        corrupt_blob("blob v2 norm code 3 (valid CRC)", 24, 3, 1, 1, len, RUV_TEMPORAL_ERR_INVALID_VERSION);
        corrupt_blob("blob v2 reserved option byte 31 (valid CRC)", 31, 1, 1, 1, len,
                     RUV_TEMPORAL_ERR_INVALID_VERSION);
    }
    corrupt_blob("blob CRC (a weight byte flipped)", 100, (uint8_t)~harness_blob[100], 1, 0, len,
                 RUV_TEMPORAL_ERR_INVALID_CRC);
    corrupt_blob("blob CRC (stored CRC flipped)", len - 1, (uint8_t)~harness_blob[len - 1], 1, 0, len,
                 RUV_TEMPORAL_ERR_INVALID_CRC);
    corrupt_blob("blob n_classes=1 (valid CRC)", 18, 1, 2, 1, len, RUV_TEMPORAL_ERR_INVALID_ARG);
    corrupt_blob("blob input_dim=8: weights_len disagrees (valid CRC)", 8, 8, 2, 1, len,
                 RUV_TEMPORAL_ERR_INVALID_SIZE);
    corrupt_blob("blob NaN weight (valid CRC)", header, 0x7FC00000u, 4, 1, len, RUV_TEMPORAL_ERR_INVALID_ARG);
    corrupt_blob("blob +Inf weight (valid CRC)", header + 4, 0x7F800000u, 4, 1, len,
                 RUV_TEMPORAL_ERR_INVALID_ARG);
    check(ctx == NULL, "blob: a refused blob never wrote *out_ctx");

    /* Borrowed in place at any alignment (weights may sit in flash). */
    uint8_t *shifted = malloc(len + 1);
    if (shifted != NULL) {
        memcpy(shifted + 1, blob, len);
        int32_t code = init_with(shifted + 1, len, &ctx);
        check_code("init from an unaligned copy of the blob", code, RUV_TEMPORAL_OK);
        if (code == RUV_TEMPORAL_OK) {
            ruv_temporal_destroy(ctx);
            ctx = NULL;
        }
        free(shifted);
    }
}

/* Bad calls on a live context, then proof that they changed nothing: the
 * context that saw them classifies bit-identically to a twin that did
 * not. */
static void bad_calls(void) {
    ruv_temporal_ctx_t *ctx = NULL;
    ruv_temporal_ctx_t *twin = NULL;
    if (init_with(harness_blob, sizeof harness_blob, &ctx) != RUV_TEMPORAL_OK ||
        init_with(harness_blob, sizeof harness_blob, &twin) != RUV_TEMPORAL_OK) {
        check(0, "bad calls: init two contexts");
        ruv_temporal_destroy(ctx);
        ruv_temporal_destroy(twin);
        return;
    }
    float logits[HARNESS_N_CLASSES + 1];
    const float sentinel = 12345.0f;
    for (uint32_t c = 0; c <= HARNESS_N_CLASSES; c++) {
        logits[c] = sentinel;
    }

    check_code("classify before any push", ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES),
               RUV_TEMPORAL_ERR_INVALID_STATE);
    check_code("push ctx=NULL", ruv_temporal_push(NULL, asset_frame(0)), RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("push frame=NULL", ruv_temporal_push(ctx, NULL), RUV_TEMPORAL_ERR_INVALID_ARG);

    float bad[HARNESS_INPUT_DIM];
    const struct {
        const char *what;
        uint32_t column;
        float value;
    } non_finite[] = {
        {"push NaN frame (column 0)", 0, NAN},
        {"push +Inf frame (column 7)", 7, INFINITY},
        {"push -Inf frame (last column)", HARNESS_INPUT_DIM - 1, -INFINITY},
    };
    for (size_t i = 0; i < sizeof non_finite / sizeof non_finite[0]; i++) {
        memcpy(bad, asset_frame(3), sizeof bad);
        bad[non_finite[i].column] = non_finite[i].value;
        check_code(non_finite[i].what, ruv_temporal_push(ctx, bad), RUV_TEMPORAL_ERR_INVALID_ARG);
    }
    check_code("classify after only refused pushes",
               ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES), RUV_TEMPORAL_ERR_INVALID_STATE);

    /* 48 frames, with refused frames and bad classify calls in between. */
    for (uint32_t i = 0; i < 48; i++) {
        ruv_temporal_push(ctx, asset_frame(i));
        ruv_temporal_push(twin, asset_frame(i));
        if (i % 10 == 5) {
            memcpy(bad, asset_frame(i), sizeof bad);
            bad[i % HARNESS_INPUT_DIM] = NAN;
            ruv_temporal_push(ctx, bad);
        }
    }
    check_code("classify ctx=NULL", ruv_temporal_classify(NULL, logits, HARNESS_N_CLASSES),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("classify logits=NULL", ruv_temporal_classify(ctx, NULL, HARNESS_N_CLASSES),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("classify n_classes=0", ruv_temporal_classify(ctx, logits, 0),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("classify n_classes=3 (model has 4)",
               ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES - 1), RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("classify n_classes=5 (model has 4)",
               ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES + 1), RUV_TEMPORAL_ERR_INVALID_ARG);
    int untouched = 1;
    for (uint32_t c = 0; c <= HARNESS_N_CLASSES; c++) {
        untouched &= logits[c] == sentinel;
    }
    check(untouched, "failed classify calls never wrote the logits");

    float twin_logits[HARNESS_N_CLASSES];
    int32_t code = ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES);
    check_code("classify on the context whose calls failed", code, RUV_TEMPORAL_OK);
    int32_t twin_code = ruv_temporal_classify(twin, twin_logits, HARNESS_N_CLASSES);
    check(code == RUV_TEMPORAL_OK && twin_code == RUV_TEMPORAL_OK &&
              memcmp(logits, twin_logits, sizeof twin_logits) == 0,
          "the context whose calls failed classifies bit-identically to a clean twin");
    compare_with_golden("stream", STREAM_WINDOW, 48, logits);
    ruv_temporal_destroy(ctx);
    ruv_temporal_destroy(twin);
}

static void bad_packets(void) {
    float logits[HARNESS_N_CLASSES] = {0.5f, 1.75f, 2.5f, -1.0f};
    uint8_t packet[PACKET_LEN];
    check_code("encode_packet logits=NULL", encode(NULL, HARNESS_N_CLASSES, 1, 2, 3, packet, PACKET_LEN),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("encode_packet out=NULL", encode(logits, HARNESS_N_CLASSES, 1, 2, 3, NULL, PACKET_LEN),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("encode_packet n_classes=0", encode(logits, 0, 1, 2, 3, packet, PACKET_LEN),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("encode_packet out_len=39", encode(logits, HARNESS_N_CLASSES, 1, 2, 3, packet, PACKET_LEN - 1),
               RUV_TEMPORAL_ERR_INVALID_SIZE);
    logits[1] = NAN;
    check_code("encode_packet NaN logit", encode(logits, HARNESS_N_CLASSES, 1, 2, 3, packet, PACKET_LEN),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    logits[1] = INFINITY;
    check_code("encode_packet +Inf logit", encode(logits, HARNESS_N_CLASSES, 1, 2, 3, packet, PACKET_LEN),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    logits[1] = 1.75f;
    int32_t code = encode(logits, HARNESS_N_CLASSES, 9, 1234567, 42, packet, PACKET_LEN);
    check_code("encode_packet known logits", code, RUV_TEMPORAL_OK);
    check(code == RUV_TEMPORAL_OK && packet_matches(packet, logits, 9, 1234567, 42) && packet[24] == 2 &&
              le_float(packet + 32) == 0.75f,
          "encode_packet: argmax 2, margin 0.75, CRC-32 verified in C");
    /* The header's packed struct must overlay the wire bytes exactly (all
     * our targets are little-endian, like the wire format). */
    ruv_temporal_packet_t view;
    memcpy(&view, packet, sizeof view);
    check(view.magic == PACKET_MAGIC && view.version == 1 && view.n_classes == HARNESS_N_CLASSES &&
              view.node_id == 9 && view.ts_us == 1234567 && view.seq == 42 && view.argmax == 2 &&
              view.top_logit == 2.5f && view.top1_minus_top2 == 0.75f &&
              view.crc32 == crc32_ieee(packet, 36),
          "ruv_temporal_packet_t reads the encoded packet field for field");
    packet[30] ^= 0x01;
    check(!packet_matches(packet, logits, 9, 1234567, 42), "a flipped packet bit fails the CRC check");
}

/* ------------------------------------------------------------ raw CSI */

/* ruv_temporal_push_csi of packet `index` of the recorded log. */
static int32_t push_csi_packet(ruv_temporal_ctx_t *ctx, uint32_t index, uint32_t *out_frames) {
    const harness_csi_packet_t *p = &harness_csi_packets[index];
    return ruv_temporal_push_csi(ctx, &harness_csi_bytes[p->offset], p->len, p->sig_mode, p->cwb,
                                 p->secondary_channel, p->stbc, p->timestamp_us, out_frames);
}

/* A context for the CSI runs: the default model, a HARNESS_CSI_WINDOW ring. */
static int32_t init_csi(ruv_temporal_ctx_t **ctx) {
    return ruv_temporal_init(harness_blob, sizeof harness_blob, HARNESS_INPUT_DIM, HARNESS_CSI_WINDOW,
                             HARNESS_N_CLASSES, ctx);
}

/* The firmware's CSI callback flow: every packet of the recorded log into
 * ruv_temporal_push_csi, a classification after every
 * HARNESS_CSI_CLASSIFY_EVERY packets; the frame counts and logits must be
 * what the host's aether-csi + aether-model compute for the same log. */
static void csi_run(void) {
    ruv_temporal_ctx_t *ctx = NULL;
    int32_t code = init_csi(&ctx);
    check_code("csi: init with the default model", code, RUV_TEMPORAL_OK);
    if (code != RUV_TEMPORAL_OK) {
        return;
    }
    uint32_t frames = 0;
    uint32_t next = 0;
    int all_pushed = 1;
    for (uint32_t index = 0; index < HARNESS_CSI_PACKET_COUNT; index++) {
        uint32_t emitted = 0;
        all_pushed &= push_csi_packet(ctx, index, &emitted) == RUV_TEMPORAL_OK;
        frames += emitted;
        uint32_t packets = index + 1;
        if (next >= HARNESS_CSI_EXPECT_COUNT || harness_csi_expect[next].packets != packets) {
            continue;
        }
        const harness_csi_expect_t *row = &harness_csi_expect[next++];
        char what[112];
        snprintf(what, sizeof what, "csi: %" PRIu32 " frames after %" PRIu32 " packets (host: %" PRIu32 ")",
                 frames, packets, row->frames);
        check(frames == row->frames, what);
        float logits[HARNESS_N_CLASSES];
        code = ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES);
        if (code != RUV_TEMPORAL_OK) {
            check_code("csi: classify", code, RUV_TEMPORAL_OK);
            continue;
        }
        print_logits("csi", packets, logits);
        float err = scaled_diff(logits, row->logits);
        snprintf(what, sizeof what,
                 "csi: logits after %" PRIu32 " packets match the host's aether-csi + aether-model (%.2g of scale)",
                 packets, (double)err);
        check(err <= TOLERANCE, what);
    }
    check(all_pushed, "csi: every packet of the recorded log pushed");
    check(next == HARNESS_CSI_EXPECT_COUNT, "csi: classified at every expected point");
    printf("csi-frames %" PRIu32 " from %u packets\n", frames, (unsigned)HARNESS_CSI_PACKET_COUNT);
    ruv_temporal_destroy(ctx);
}

/* Per-packet cost of ruv_temporal_push_csi where the platform can measure
 * it (qemu: retired instructions, heap, stack): the recorded log pushed
 * with nothing else in between. A packet that closes a frame also runs the
 * running normalisation and the ring copy, so the mean and the maximum are
 * both reported. */
static void csi_measure(void) {
    if (!platform_can_measure()) {
        return;
    }
    ruv_temporal_ctx_t *ctx = NULL;
    if (init_csi(&ctx) != RUV_TEMPORAL_OK) {
        check(0, "csi measure: init");
        return;
    }
    size_t heap_before = platform_heap_live();
    platform_heap_reset_peak();
    uint64_t total = 0;
    uint32_t most = 0;
    uint32_t frames = 0;
    int all_pushed = 1;
    platform_stack_paint();
    for (uint32_t index = 0; index < HARNESS_CSI_PACKET_COUNT; index++) {
        uint32_t emitted = 0;
        uint32_t start = platform_instret();
        all_pushed &= push_csi_packet(ctx, index, &emitted) == RUV_TEMPORAL_OK;
        uint32_t instructions = platform_instret() - start;
        total += instructions;
        most = instructions > most ? instructions : most;
        frames += emitted;
    }
    size_t stack = platform_stack_used();
    check(all_pushed, "csi measure: every packet pushed");
    check(platform_heap_peak() == heap_before && platform_heap_live() == heap_before,
          "csi measure: push_csi allocates nothing");
    printf("measure-csi packets=%u frames=%" PRIu32 " instructions_per_packet=%" PRIu32
           " instructions_max=%" PRIu32 " stack_peak=%zu\n",
           (unsigned)HARNESS_CSI_PACKET_COUNT, frames,
           (uint32_t)(total / HARNESS_CSI_PACKET_COUNT), most, stack);
    ruv_temporal_destroy(ctx);
}

/* One refused push_csi: its code, and *out_frames (set to 0xDEAD before
 * the call) left alone. */
static void refuse_csi(const char *what, int32_t got, uint32_t out_frames, int32_t expected) {
    char got_text[40];
    char expected_text[40];
    int untouched = out_frames == 0xDEADu;
    checks++;
    if (got == expected && untouched) {
        printf("ok     %s -> %s, out_frames untouched\n", what, code_text(got, got_text, sizeof got_text));
    } else {
        failures++;
        printf("FAILED %s -> %s%s, expected %s\n", what, code_text(got, got_text, sizeof got_text),
               untouched ? "" : " and wrote *out_frames",
               code_text(expected, expected_text, sizeof expected_text));
    }
}

/* Every refusal of push_csi, at the start of a stream and in the middle of
 * one; the context that saw them must classify bit-identically to a twin
 * that did not (neither the ring nor the extractor's stream moved). */
static void csi_bad_calls(void) {
    ruv_temporal_ctx_t *ctx = NULL;
    ruv_temporal_ctx_t *twin = NULL;
    if (init_csi(&ctx) != RUV_TEMPORAL_OK || init_csi(&twin) != RUV_TEMPORAL_OK) {
        check(0, "csi bad calls: init two contexts");
        ruv_temporal_destroy(ctx);
        ruv_temporal_destroy(twin);
        return;
    }
    static const int8_t silent[256];
    const harness_csi_packet_t *first = &harness_csi_packets[0];
    const int8_t *bytes = &harness_csi_bytes[first->offset];
    uint32_t out = 0xDEADu;
    refuse_csi("push_csi silent first packet",
               ruv_temporal_push_csi(ctx, silent, 256, 1, 0, 0, 0, first->timestamp_us, &out), out,
               RUV_TEMPORAL_ERR_INVALID_ARG);
    float logits[HARNESS_N_CLASSES];
    check_code("classify after only refused packets", ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES),
               RUV_TEMPORAL_ERR_INVALID_STATE);
    const uint32_t half = HARNESS_CSI_PACKET_COUNT / 2;
    for (uint32_t index = 0; index < half; index++) {
        uint32_t emitted = 0;
        push_csi_packet(ctx, index, &emitted);
        push_csi_packet(twin, index, &emitted);
    }
    /* Mid-stream, timestamped 3 ms after the last packet: any of these,
     * were it accepted, would move the stream. */
    const harness_csi_packet_t *last = &harness_csi_packets[half - 1];
    const uint32_t later = last->timestamp_us + 3000u;
    bytes = &harness_csi_bytes[last->offset];
    out = 0xDEADu;
    refuse_csi("push_csi ctx=NULL", ruv_temporal_push_csi(NULL, bytes, 256, 1, 0, 0, 0, later, &out), out,
               RUV_TEMPORAL_ERR_INVALID_ARG);
    refuse_csi("push_csi buf=NULL", ruv_temporal_push_csi(ctx, NULL, 256, 1, 0, 0, 0, later, &out), out,
               RUV_TEMPORAL_ERR_INVALID_ARG);
    check_code("push_csi out_frames=NULL", ruv_temporal_push_csi(ctx, bytes, 256, 1, 0, 0, 0, later, NULL),
               RUV_TEMPORAL_ERR_INVALID_ARG);
    refuse_csi("push_csi silent packet", ruv_temporal_push_csi(ctx, silent, 256, 1, 0, 0, 0, later, &out),
               out, RUV_TEMPORAL_ERR_INVALID_ARG);
    refuse_csi("push_csi len=100: no layout", ruv_temporal_push_csi(ctx, bytes, 100, 1, 0, 0, 0, later, &out),
               out, RUV_TEMPORAL_ERR_NOT_SUPPORTED);
    refuse_csi("push_csi sig_mode=3: no layout",
               ruv_temporal_push_csi(ctx, bytes, 256, 3, 0, 0, 0, later, &out), out,
               RUV_TEMPORAL_ERR_NOT_SUPPORTED);
    refuse_csi("push_csi HT40 without a secondary channel",
               ruv_temporal_push_csi(ctx, bytes, 256, 1, 1, 0, 0, later, &out), out,
               RUV_TEMPORAL_ERR_NOT_SUPPORTED);
    refuse_csi("push_csi non-HT packet in an HT20 stream: another grid",
               ruv_temporal_push_csi(ctx, bytes, 128, 0, 0, 0, 0, later, &out), out,
               RUV_TEMPORAL_ERR_INVALID_STATE);
    float twin_logits[HARNESS_N_CLASSES];
    int32_t code = ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES);
    int32_t twin_code = ruv_temporal_classify(twin, twin_logits, HARNESS_N_CLASSES);
    check(code == RUV_TEMPORAL_OK && twin_code == RUV_TEMPORAL_OK &&
              memcmp(logits, twin_logits, sizeof twin_logits) == 0,
          "csi: the context that refused packets classifies bit-identically to a clean twin");
    /* A duplicate is dropped, not refused. */
    out = 0xDEADu;
    code = push_csi_packet(ctx, half - 1, &out);
    check(code == RUV_TEMPORAL_OK && out == 0, "push_csi duplicate timestamp: OK, 0 frames");
    int same = 1;
    for (uint32_t index = half; index < HARNESS_CSI_PACKET_COUNT; index++) {
        uint32_t a = 0;
        uint32_t b = 0;
        same &= push_csi_packet(ctx, index, &a) == RUV_TEMPORAL_OK &&
                push_csi_packet(twin, index, &b) == RUV_TEMPORAL_OK && a == b;
    }
    code = ruv_temporal_classify(ctx, logits, HARNESS_N_CLASSES);
    twin_code = ruv_temporal_classify(twin, twin_logits, HARNESS_N_CLASSES);
    check(same && code == RUV_TEMPORAL_OK && twin_code == RUV_TEMPORAL_OK &&
              memcmp(logits, twin_logits, sizeof twin_logits) == 0,
          "csi: both streams continue identically to the end of the log");
    ruv_temporal_destroy(ctx);
    ruv_temporal_destroy(twin);
}

int main(void) {
    printf("harness: %zu-byte blob, %u frames of %u values, %u golden rows\n", sizeof harness_blob,
           (unsigned)HARNESS_FRAME_COUNT, (unsigned)HARNESS_INPUT_DIM, (unsigned)HARNESS_GOLDEN_COUNT);
    check_code("kernel_self_test", ruv_temporal_kernel_self_test(), RUV_TEMPORAL_OK);
    ruv_temporal_destroy(NULL);
    check(1, "destroy(NULL) is a no-op");
    stream_run();
    full_ring_run();
    bad_init();
    bad_calls();
    bad_packets();
    csi_run();
    csi_measure();
    csi_bad_calls();
    printf("harness: %u checks, %u failed\n", checks, failures);
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
