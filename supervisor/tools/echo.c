/* agentd.echo: returns its argument. A brokered call with no work of its own,
 * so benchmarks and tests measure exactly the broker: policy, journal, replay. */
#include "supervisor/tools/tools.h"

#include <errno.h>

#include "supervisor/tools/tools-internal.h"

static enum tool_class
echo_classify(const json_t *args)
{
	/* Declared idempotent so a call costs what a side effect costs: an intent
	 * commit and a result commit. */
	return TOOL_IDEMPOTENT;
}

static int
echo_call(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content, bool *ret_is_error)
{
	json_t *value = NULL;
	json_error_t jerr;

	if (json_unpack_ex((json_t *)args, &jerr, JSON_STRICT, "{s?o}", "value", &value) < 0)
		return tools_bad_args(&jerr, ret_content, ret_is_error);
	json_t *out = json_pack("{s:O}", "value", value ? value : json_null());
	if (!out)
		return -ENOMEM;
	*ret_content = out;
	*ret_is_error = false;
	return 0;
}

const struct tool_def tools_echo = {
    .name = "agentd.echo",
    .description = "Return {\"value\": value} unchanged. Does nothing else; useful to test "
		   "and measure the broker.",
    .input_schema = "{\"type\":\"object\",\"properties\":{\"value\":{}},"
		    "\"additionalProperties\":false}",
    .classify = echo_classify,
    .call = echo_call,
    .nonblocking = true,
};
