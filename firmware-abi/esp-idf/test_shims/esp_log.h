/* Shim of ESP-IDF's esp_log.h. The macros forward to one printf-like
 * declaration so the compiler checks every format string against its
 * arguments, which is what the real macros get wrong most easily (int32_t
 * is `long` on Xtensa: PRId32, not %d). */
#ifndef TEST_SHIM_ESP_LOG_H
#define TEST_SHIM_ESP_LOG_H

void test_shim_log(const char *tag, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#define ESP_LOGE(tag, format, ...) test_shim_log(tag, format, ##__VA_ARGS__)
#define ESP_LOGW(tag, format, ...) test_shim_log(tag, format, ##__VA_ARGS__)
#define ESP_LOGI(tag, format, ...) test_shim_log(tag, format, ##__VA_ARGS__)
#define ESP_LOGD(tag, format, ...) test_shim_log(tag, format, ##__VA_ARGS__)

#endif
