/*
 * temporal_task: see temporal_task.h for what it does and why it is shaped
 * this way. Everything here is FreeRTOS plumbing around the six calls of
 * the ruv_temporal C ABI (kernel_self_test, init, push, classify,
 * encode_packet, destroy); the model itself is the Rust archive
 * libruv_temporal.a.
 */
#include "temporal_task.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/task.h"

#if CONFIG_CSI_TEMPORAL_HEAD_ENABLED

#include "esp_timer.h"
#include "ruv_temporal.h"

static const char *TAG = "csi_temporal";

_Static_assert(TEMPORAL_TASK_PACKET_LEN == RUV_TEMPORAL_PACKET_LEN,
               "temporal_task.h promises the packet length ruv_temporal.h defines");

/*
 * The model blob, embedded by CMake (EMBED_FILES model.rvne). ESP-IDF
 * names the symbols after the file; the asm labels give them C names of our
 * own (the generated names are reserved identifiers in C). The context borrows these bytes, which is safe because they live in
 * flash for the life of the program.
 */
extern const uint8_t model_rvne_start[] __asm__("_binary_model_rvne_start");
extern const uint8_t model_rvne_end[] __asm__("_binary_model_rvne_end");

/* How long one queue wait lasts before the task looks at the stop flag:
 * the longest temporal_task_stop() waits for an idle task. */
#define STOP_POLL_MS 100
/* How long temporal_task_stop() waits in total. A classification in
 * progress finishes first, and today that can take seconds: `cargo xtask
 * size` measures about 590 M instructions per classify of a 256-frame ring
 * on riscv32imafc (110 M at 64 frames). */
#define STOP_WAIT_MS 10000
#define STOP_WAIT_STEP_MS 10

/*
 * One instance: the head is one model per device, and a static state keeps
 * temporal_task_submit() free of a handle the capture code would have to
 * carry around.
 */
typedef struct {
    ruv_temporal_ctx_t *ctx;
    QueueHandle_t queue;
    TaskHandle_t task;
    float *frame;  /* the frame being received: input_dim floats */
    float *logits; /* n_classes floats */
    uint32_t input_dim;
    uint32_t n_classes;
    uint32_t period;
    uint8_t node_id;
    temporal_task_packet_cb_t on_packet;
    void *user;
    /* Set by temporal_task_stop(), read by the task. volatile is enough for
     * a one-way flag: GCC serialises volatile accesses on Xtensa (memw), so
     * the other core sees the store. */
    volatile bool stop_requested;
    /* Set by the task as its last access to this struct. */
    volatile bool finished;
} temporal_state_t;

static temporal_state_t s_state;
static bool s_started;

/* esp_err_to_name() takes an esp_err_t; ruv_temporal codes have the same
 * values by design (the ABI is esp_err_t-compatible). */
static const char *code_name(int32_t code)
{
    return esp_err_to_name((esp_err_t)code);
}

/* Frees whatever start() got as far as creating. Not for a running task. */
static void release(temporal_state_t *state)
{
    if (state->queue != NULL) {
        vQueueDelete(state->queue);
    }
    ruv_temporal_destroy(state->ctx); /* NULL is a no-op */
    free(state->frame);
    free(state->logits);
    *state = (temporal_state_t){0};
}

/* Classifies the ring and hands the packet to the application. */
static void classify_and_emit(temporal_state_t *state, uint32_t *seq)
{
    int32_t rc = ruv_temporal_classify(state->ctx, state->logits, state->n_classes);
    if (rc != RUV_TEMPORAL_OK) {
        /* Non-finite logits come back as an error, never as NaN in a
         * packet; the ring is unchanged, so the next period tries again. */
        ESP_LOGE(TAG, "classify failed: %s (0x%" PRIx32 ")", code_name(rc), (uint32_t)rc);
        return;
    }
    uint8_t packet[RUV_TEMPORAL_PACKET_LEN];
    rc = ruv_temporal_encode_packet(state->logits, state->n_classes, state->node_id,
                                    (uint64_t)esp_timer_get_time(), *seq, packet, sizeof packet);
    if (rc != RUV_TEMPORAL_OK) {
        ESP_LOGE(TAG, "encode_packet failed: %s (0x%" PRIx32 ")", code_name(rc), (uint32_t)rc);
        return;
    }
    /* seq counts packets sent, so a receiver sees a gap as a lost packet. */
    *seq += 1;
    state->on_packet(packet, sizeof packet, state->user);
}

static void temporal_task_main(void *arg)
{
    temporal_state_t *state = arg;
    uint32_t since_classify = 0;
    uint32_t seq = 0;
    while (!state->stop_requested) {
        if (xQueueReceive(state->queue, state->frame, pdMS_TO_TICKS(STOP_POLL_MS)) != pdTRUE) {
            continue; /* timed out: look at the stop flag again */
        }
        int32_t rc = ruv_temporal_push(state->ctx, state->frame);
        if (rc != RUV_TEMPORAL_OK) {
            /* NaN/Inf in the frame: refused, ring unchanged. Not counted
             * towards the period, which counts frames the model saw. */
            ESP_LOGW(TAG, "frame refused: %s (0x%" PRIx32 ")", code_name(rc), (uint32_t)rc);
            continue;
        }
        since_classify += 1;
        if (since_classify >= state->period) {
            since_classify = 0;
            classify_and_emit(state, &seq);
        }
    }
    state->finished = true;
    vTaskDelete(NULL);
}

esp_err_t temporal_task_start(const temporal_task_config_t *config)
{
    if (s_started) {
        return ESP_ERR_INVALID_STATE;
    }
    if (config == NULL || config->on_packet == NULL || config->input_dim == 0 ||
        config->window_len == 0 || config->n_classes == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    temporal_state_t *state = &s_state;
    *state = (temporal_state_t){
        .input_dim = config->input_dim,
        .n_classes = config->n_classes,
        .period = config->classify_period != 0 ? config->classify_period
                                                : CONFIG_CSI_TEMPORAL_CLASSIFY_PERIOD,
        .node_id = config->node_id,
        .on_packet = config->on_packet,
        .user = config->user,
    };
    uint32_t queue_len = config->queue_len != 0 ? config->queue_len : CONFIG_CSI_TEMPORAL_QUEUE_LEN;

    /* A kernel miscompiled for this core would classify garbage silently;
     * the known-answer test turns that into a refusal to start. */
    int32_t rc = ruv_temporal_kernel_self_test();
    if (rc != RUV_TEMPORAL_OK) {
        ESP_LOGE(TAG, "kernel self-test failed: %s (0x%" PRIx32 ")", code_name(rc), (uint32_t)rc);
        return (esp_err_t)rc;
    }

    size_t blob_len = (size_t)(model_rvne_end - model_rvne_start);
    rc = ruv_temporal_init(model_rvne_start, blob_len, config->input_dim, config->window_len,
                           config->n_classes, &state->ctx);
    if (rc != RUV_TEMPORAL_OK) {
        ESP_LOGE(TAG, "model (%u bytes) refused: %s (0x%" PRIx32 ")", (unsigned)blob_len,
                 code_name(rc), (uint32_t)rc);
        release(state);
        return (esp_err_t)rc;
    }

    state->frame = malloc(sizeof(float) * config->input_dim);
    state->logits = malloc(sizeof(float) * config->n_classes);
    state->queue = xQueueCreate(queue_len, sizeof(float) * config->input_dim);
    if (state->frame == NULL || state->logits == NULL || state->queue == NULL) {
        ESP_LOGE(TAG, "out of memory for %" PRIu32 " queued frames of %" PRIu32 " floats",
                 queue_len, config->input_dim);
        release(state);
        return ESP_ERR_NO_MEM;
    }

    /* The context passes to the task here and is used by no one else. */
    if (xTaskCreate(temporal_task_main, "csi_temporal", CONFIG_CSI_TEMPORAL_TASK_STACK_SIZE, state,
                    CONFIG_CSI_TEMPORAL_TASK_PRIORITY, &state->task) != pdPASS) {
        ESP_LOGE(TAG, "could not create the task (%d bytes of stack)",
                 CONFIG_CSI_TEMPORAL_TASK_STACK_SIZE);
        release(state);
        return ESP_ERR_NO_MEM;
    }
    s_started = true;
    ESP_LOGI(TAG, "started: %" PRIu32 " floats/frame, window %" PRIu32 ", classify every %" PRIu32,
             config->input_dim, config->window_len, state->period);
    return ESP_OK;
}

esp_err_t temporal_task_submit(const float *frame, TickType_t wait)
{
    if (!s_started) {
        return ESP_ERR_INVALID_STATE;
    }
    if (frame == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    return xQueueSend(s_state.queue, frame, wait) == pdTRUE ? ESP_OK : ESP_ERR_TIMEOUT;
}

esp_err_t temporal_task_stop(void)
{
    if (!s_started) {
        return ESP_ERR_INVALID_STATE;
    }
    temporal_state_t *state = &s_state;
    state->stop_requested = true;
    for (int waited = 0; !state->finished && waited < STOP_WAIT_MS; waited += STOP_WAIT_STEP_MS) {
        vTaskDelay(pdMS_TO_TICKS(STOP_WAIT_STEP_MS));
    }
    if (!state->finished) {
        ESP_LOGE(TAG, "task did not stop within %d ms", STOP_WAIT_MS);
        return ESP_ERR_TIMEOUT;
    }
    release(state);
    s_started = false;
    return ESP_OK;
}

#else /* !CONFIG_CSI_TEMPORAL_HEAD_ENABLED */

/* Disabled in Kconfig: the API stays, so callers need no #if, and nothing
 * references the archive or the model, so neither has to exist. */

esp_err_t temporal_task_start(const temporal_task_config_t *config)
{
    (void)config;
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t temporal_task_submit(const float *frame, TickType_t wait)
{
    (void)frame;
    (void)wait;
    return ESP_ERR_NOT_SUPPORTED;
}

esp_err_t temporal_task_stop(void)
{
    return ESP_ERR_NOT_SUPPORTED;
}

#endif /* CONFIG_CSI_TEMPORAL_HEAD_ENABLED */
