/* Shim of ESP-IDF's esp_err.h: the codes and the one function
 * temporal_task.c uses, with ESP-IDF's values and types. */
#ifndef TEST_SHIM_ESP_ERR_H
#define TEST_SHIM_ESP_ERR_H

typedef int esp_err_t;

#define ESP_OK 0
#define ESP_FAIL -1
#define ESP_ERR_NO_MEM 0x101
#define ESP_ERR_INVALID_ARG 0x102
#define ESP_ERR_INVALID_STATE 0x103
#define ESP_ERR_NOT_SUPPORTED 0x106
#define ESP_ERR_TIMEOUT 0x107

const char *esp_err_to_name(esp_err_t code);

#endif
