/*
 * fuzz_input.h - reading a libFuzzer input as a stream of decisions: each
 * call consumes bytes from the front; past the end every read is 0, so any
 * input (even empty) is a complete, deterministic script.
 */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct input { const uint8_t *p; size_t n; };

static inline uint8_t byte(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint32_t u32(struct input *in)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | byte(in);
	return v;
}

#endif
