/* Shim of ESP-IDF's freertos/FreeRTOS.h: the base types and macros
 * temporal_task.c uses, with the widths ESP-IDF's port gives them
 * (32-bit ticks, pdMS_TO_TICKS at a 1000 Hz tick). */
#ifndef TEST_SHIM_FREERTOS_H
#define TEST_SHIM_FREERTOS_H

#include <stdint.h>

#include "sdkconfig.h"

typedef int BaseType_t;
typedef unsigned int UBaseType_t;
typedef uint32_t TickType_t;

#define pdFALSE ((BaseType_t)0)
#define pdTRUE ((BaseType_t)1)
#define pdPASS (pdTRUE)
#define pdFAIL (pdFALSE)
#define portMAX_DELAY ((TickType_t)0xffffffffUL)
#define configTICK_RATE_HZ 1000
#define pdMS_TO_TICKS(ms) ((TickType_t)(((TickType_t)(ms) * (TickType_t)configTICK_RATE_HZ) / (TickType_t)1000U))

#endif
