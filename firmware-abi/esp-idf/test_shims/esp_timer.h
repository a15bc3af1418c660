/* Shim of ESP-IDF's esp_timer.h: microseconds since boot. */
#ifndef TEST_SHIM_ESP_TIMER_H
#define TEST_SHIM_ESP_TIMER_H

#include <stdint.h>

int64_t esp_timer_get_time(void);

#endif
