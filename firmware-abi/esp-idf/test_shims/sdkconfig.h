/* Stand-in for ESP-IDF's generated sdkconfig.h (see README.md): a `y`
 * option is defined as 1, an `n` option is not defined at all, as in the
 * real file. */
#ifndef TEST_SHIM_SDKCONFIG_H
#define TEST_SHIM_SDKCONFIG_H

#if TEST_SHIM_HEAD_ENABLED
#define CONFIG_CSI_TEMPORAL_HEAD_ENABLED 1
#define CONFIG_CSI_TEMPORAL_CLASSIFY_PERIOD 16
#define CONFIG_CSI_TEMPORAL_QUEUE_LEN 32
#define CONFIG_CSI_TEMPORAL_TASK_STACK_SIZE 8192
#define CONFIG_CSI_TEMPORAL_TASK_PRIORITY 5
#endif

#endif
