/* Helpers shared by the built-in tools; not part of the supervisor's interface. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Symbolic name of an errno value ("ENOENT"), "EIO" if unknown. */
const char *tools_errno_code(int err);

/* Tool error from a negative or positive errno: {"error":{"code":"ENOENT",
 * "message":"<what>: <strerror>"}}. NULL on allocation failure. */
json_t *tools_errno_error(int err, const char *what);

/* Standard base64 (with padding) of buf. New reference, NULL on ENOMEM. */
json_t *tools_base64(const void *buf, size_t len);

/* A JSON string for buf if it is valid UTF-8 without NUL bytes, else NULL.
 * The caller falls back to base64 when NULL is returned. */
json_t *tools_text_or_null(const char *buf, size_t len);

/* Set *ret_content to a tool error built from a json_unpack_ex failure. */
int tools_bad_args(const json_error_t *jerr, json_t **ret_content, bool *ret_is_error);
