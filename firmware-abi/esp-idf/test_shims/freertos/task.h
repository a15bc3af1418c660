/* Shim of ESP-IDF's freertos/task.h. ESP-IDF's xTaskCreate takes the
 * stack depth in bytes as a uint32_t. */
#ifndef TEST_SHIM_TASK_H
#define TEST_SHIM_TASK_H

#include <stdint.h>

#include "freertos/FreeRTOS.h"

typedef struct tskTaskControlBlock *TaskHandle_t;
typedef void (*TaskFunction_t)(void *);

BaseType_t xTaskCreate(TaskFunction_t pvTaskCode, const char *const pcName,
                       const uint32_t usStackDepth, void *const pvParameters,
                       UBaseType_t uxPriority, TaskHandle_t *const pvCreatedTask);
void vTaskDelete(TaskHandle_t xTaskToDelete);
void vTaskDelay(const TickType_t xTicksToDelay);

#endif
