/*
 * temporal_task: the CSI temporal head as a FreeRTOS task.
 *
 * The application owns the CSI capture and the radio; this component owns
 * the model. The capture code hands each CSI frame (input_dim floats) to
 * temporal_task_submit(), which copies it into a queue, so the capture
 * callback never waits for a classification. One task drains the queue,
 * pushes every frame into the model's ring and, every K frames
 * (CONFIG_CSI_TEMPORAL_CLASSIFY_PERIOD unless the config says otherwise),
 * classifies the ring and hands the 40-byte classification packet to the
 * application's callback, which decides how to send it.
 *
 * The model context lives in that one task: ruv_temporal contexts are not
 * thread-safe, and one owner means no locks on the hot path.
 *
 * With CONFIG_CSI_TEMPORAL_HEAD_ENABLED off the same API exists but every
 * call returns ESP_ERR_NOT_SUPPORTED, so application code needs no #if of
 * its own, and the build links neither the Rust archive nor the model.
 */
#ifndef TEMPORAL_TASK_H
#define TEMPORAL_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "freertos/FreeRTOS.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Size of the classification packet handed to the callback. */
#define TEMPORAL_TASK_PACKET_LEN 40

/**
 * The application's hook for finished packets.
 *
 * Called from the temporal task (not from an ISR) with the packet's 40
 * little-endian bytes, ready to send as is; the bytes are only valid for
 * the duration of the call. Keep it short: frames queue up while it runs.
 */
typedef void (*temporal_task_packet_cb_t)(const uint8_t *packet, size_t len, void *user);

/** What temporal_task_start() needs. Zero fields take the Kconfig default. */
typedef struct {
    /** Floats per CSI frame; must match the model blob. */
    uint32_t input_dim;
    /** Frames the ring holds (the attention window). */
    uint32_t window_len;
    /** Classes the model outputs; must match the model blob. */
    uint32_t n_classes;
    /** Identifies this node in every packet. */
    uint8_t node_id;
    /** Classify every K frames; 0 = CONFIG_CSI_TEMPORAL_CLASSIFY_PERIOD. */
    uint32_t classify_period;
    /** Frames the queue buffers; 0 = CONFIG_CSI_TEMPORAL_QUEUE_LEN. */
    uint32_t queue_len;
    /** Required: receives every packet. */
    temporal_task_packet_cb_t on_packet;
    /** Passed back to on_packet unchanged. */
    void *user;
} temporal_task_config_t;

/**
 * Validates the embedded model against the config, runs the kernel
 * self-test, creates the context, the queue and the task.
 *
 * Errors come back here, before anything runs: ESP_ERR_INVALID_ARG (NULL
 * config or callback, zero dimension, a blob that does not match),
 * ESP_ERR_INVALID_STATE (already started), ESP_ERR_NO_MEM, ESP_FAIL (the
 * self-test disagreed), or the ruv_temporal code of a corrupt blob
 * (ESP_ERR_INVALID_CRC, ESP_ERR_INVALID_VERSION, ESP_ERR_INVALID_SIZE).
 * ESP_ERR_NOT_SUPPORTED when the component is disabled in Kconfig.
 */
esp_err_t temporal_task_start(const temporal_task_config_t *config);

/**
 * Copies one frame (input_dim floats) into the queue, waiting up to `wait`
 * ticks for room (0 from a latency-sensitive callback). Task context only,
 * not an ISR; ESP-IDF's CSI callback runs in the WiFi task, which is fine.
 *
 * ESP_ERR_TIMEOUT when the queue stayed full (the frame is dropped),
 * ESP_ERR_INVALID_ARG for NULL, ESP_ERR_INVALID_STATE when not started.
 * A frame holding NaN or Inf is accepted here and refused by the model in
 * the task, which logs it and leaves the ring unchanged.
 */
esp_err_t temporal_task_submit(const float *frame, TickType_t wait);

/**
 * Stops the task after the frame it is working on, then frees the
 * context, the queue and the buffers. Frames still queued are dropped.
 * Stop the producer first: a temporal_task_submit() running at the same
 * time could use the queue as it is freed.
 * ESP_ERR_INVALID_STATE when not started, ESP_ERR_TIMEOUT if the task did
 * not finish within 10 s (it is then left running).
 */
esp_err_t temporal_task_stop(void);

#ifdef __cplusplus
}
#endif

#endif /* TEMPORAL_TASK_H */
