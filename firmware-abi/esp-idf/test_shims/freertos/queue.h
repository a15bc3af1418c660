/* Shim of ESP-IDF's freertos/queue.h. The real xQueueCreate/xQueueSend are
 * macros over generic functions; functions with the same parameter types
 * check the calls just as well. */
#ifndef TEST_SHIM_QUEUE_H
#define TEST_SHIM_QUEUE_H

#include "freertos/FreeRTOS.h"

typedef struct QueueDefinition *QueueHandle_t;

QueueHandle_t xQueueCreate(const UBaseType_t uxQueueLength, const UBaseType_t uxItemSize);
BaseType_t xQueueSend(QueueHandle_t xQueue, const void *const pvItemToQueue, TickType_t xTicksToWait);
BaseType_t xQueueReceive(QueueHandle_t xQueue, void *const pvBuffer, TickType_t xTicksToWait);
void vQueueDelete(QueueHandle_t xQueue);

#endif
