/*
 * fmt.c - kvsnprintf: see fmt.h.
 *
 * One pass over the format. Output goes through put(), which counts every
 * byte and stores only those that fit, so the return value is the full
 * length whatever n is (the caller can tell it was cut).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "kernel/lib/fmt.h"

struct out { char *buf; size_t n, len; };

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->n)
		o->buf[o->len] = c;
	o->len++;
}

static void pad(struct out *o, char c, int count)
{
	while (count-- > 0)
		put(o, c);
}

enum { F_LEFT = 1, F_ZERO = 2, F_ALT = 4, F_PLUS = 8, F_SPACE = 16 };

/* One integer: sign or prefix, zeros up to the precision, the digits, all
 * padded to the width (zeros after the sign with the 0 flag). */
static void put_int(struct out *o, unsigned long long v, int neg, unsigned base, int upper,
                    int flags, int width, int prec)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];   /* 64 bits in octal: 22 digits */
	int nd = 0;
	while (v) {
		tmp[nd++] = digits[v % base];
		v /= base;
	}
	if (prec < 0 && nd == 0)
		tmp[nd++] = '0';             /* a zero shows, unless the precision is 0 */
	const char *prefix = neg ? "-" : flags & F_PLUS ? "+" : flags & F_SPACE ? " " : "";
	if ((flags & F_ALT) && base == 16 && nd && !(nd == 1 && tmp[0] == '0'))
		prefix = upper ? "0X" : "0x";
	int plen = 0;
	while (prefix[plen])
		plen++;
	int zeros = prec > nd ? prec - nd : 0;
	if ((flags & F_ALT) && base == 8 && !zeros && (nd == 0 || tmp[nd - 1] != '0'))
		zeros = 1;                   /* octal's # makes the first digit 0 */
	int body = plen + zeros + nd;
	if ((flags & F_ZERO) && !(flags & F_LEFT) && prec < 0 && width > body) {
		zeros += width - body;
		body = width;
	}
	if (!(flags & F_LEFT))
		pad(o, ' ', width - body);
	for (int i = 0; i < plen; i++)
		put(o, prefix[i]);
	pad(o, '0', zeros);
	while (nd)
		put(o, tmp[--nd]);
	if (flags & F_LEFT)
		pad(o, ' ', width - body);
}

static void put_str(struct out *o, const char *s, int flags, int width, int prec)
{
	if (!s)
		s = "(null)";
	int len = 0;
	while (s[len] && (prec < 0 || len < prec))
		len++;
	if (!(flags & F_LEFT))
		pad(o, ' ', width - len);
	for (int i = 0; i < len; i++)
		put(o, s[i]);
	if (flags & F_LEFT)
		pad(o, ' ', width - len);
}

enum size { S_INT, S_CHAR, S_SHORT, S_LONG, S_LLONG, S_SIZE, S_MAX, S_PTRDIFF };

static unsigned long long arg_unsigned(va_list *ap, enum size sz)
{
	switch (sz) {
	case S_CHAR:    return (unsigned char)va_arg(*ap, unsigned int);
	case S_SHORT:   return (unsigned short)va_arg(*ap, unsigned int);
	case S_LONG:    return va_arg(*ap, unsigned long);
	case S_LLONG:   return va_arg(*ap, unsigned long long);
	case S_SIZE:    return va_arg(*ap, size_t);
	case S_MAX:     return va_arg(*ap, uintmax_t);
	case S_PTRDIFF: return (unsigned long long)va_arg(*ap, ptrdiff_t);
	default:        return va_arg(*ap, unsigned int);
	}
}

static long long arg_signed(va_list *ap, enum size sz)
{
	switch (sz) {
	case S_CHAR:    return (signed char)va_arg(*ap, int);
	case S_SHORT:   return (short)va_arg(*ap, int);
	case S_LONG:    return va_arg(*ap, long);
	case S_LLONG:   return va_arg(*ap, long long);
	case S_SIZE:    return (long long)va_arg(*ap, size_t);   /* %zd */
	case S_MAX:     return va_arg(*ap, intmax_t);
	case S_PTRDIFF: return va_arg(*ap, ptrdiff_t);
	default:        return va_arg(*ap, int);
	}
}

int kvsnprintf(char *buf, size_t n, const char *fmt, va_list ap_in)
{
	struct out o = { buf, n, 0 };
	va_list ap;
	va_copy(ap, ap_in);
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			put(&o, *p);
			continue;
		}
		const char *start = p++;
		int flags = 0, width = 0, prec = -1;
		for (;; p++) {
			if (*p == '-') flags |= F_LEFT;
			else if (*p == '0') flags |= F_ZERO;
			else if (*p == '#') flags |= F_ALT;
			else if (*p == '+') flags |= F_PLUS;
			else if (*p == ' ') flags |= F_SPACE;
			else break;
		}
		if (*p == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				flags |= F_LEFT;
				width = width == INT32_MIN ? 0 : -width;
			}
			p++;
		} else {
			while (*p >= '0' && *p <= '9' && width < 100000)
				width = width * 10 + (*p++ - '0');
		}
		if (*p == '.') {
			p++;
			prec = 0;
			if (*p == '*') {
				prec = va_arg(ap, int);   /* negative: as if none was given */
				if (prec < 0)
					prec = -1;
				p++;
			} else {
				while (*p >= '0' && *p <= '9' && prec < 100000)
					prec = prec * 10 + (*p++ - '0');
			}
		}
		enum size sz = S_INT;
		if (*p == 'h') {
			sz = S_SHORT;
			if (*++p == 'h') { sz = S_CHAR; p++; }
		} else if (*p == 'l') {
			sz = S_LONG;
			if (*++p == 'l') { sz = S_LLONG; p++; }
		} else if (*p == 'z') { sz = S_SIZE; p++; }
		else if (*p == 'j') { sz = S_MAX; p++; }
		else if (*p == 't') { sz = S_PTRDIFF; p++; }
		switch (*p) {
		case 'd': case 'i': {
			long long v = arg_signed(&ap, sz);
			unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
			put_int(&o, m, v < 0, 10, 0, flags, width, prec);
			break;
		}
		case 'u':
			put_int(&o, arg_unsigned(&ap, sz), 0, 10, 0, flags & ~(F_PLUS | F_SPACE), width, prec);
			break;
		case 'x': case 'X':
			put_int(&o, arg_unsigned(&ap, sz), 0, 16, *p == 'X', flags & ~(F_PLUS | F_SPACE), width, prec);
			break;
		case 'o':
			put_int(&o, arg_unsigned(&ap, sz), 0, 8, 0, flags & ~(F_PLUS | F_SPACE), width, prec);
			break;
		case 'p': {
			/* 0x and the digits, as newlib prints them (NULL too: 0x0) */
			uintptr_t v = (uintptr_t)va_arg(ap, void *);
			if (v)
				put_int(&o, v, 0, 16, 0, (flags & F_LEFT) | F_ALT, width, prec);
			else
				put_str(&o, "0x0", flags, width, -1);
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			if (!(flags & F_LEFT))
				pad(&o, ' ', width - 1);
			put(&o, c);
			if (flags & F_LEFT)
				pad(&o, ' ', width - 1);
			break;
		}
		case 's':
			put_str(&o, va_arg(ap, const char *), flags, width, prec);
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			/* not ours (a float, %n, a typo): shown as written, no argument used */
			for (const char *q = start; q <= p && *q; q++)
				put(&o, *q);
			if (!*p)
				p--;     /* the format ended inside the conversion */
			break;
		}
	}
	va_end(ap);
	if (n)
		buf[o.len < n ? o.len : n - 1] = '\0';
	return o.len > INT32_MAX ? INT32_MAX : (int)o.len;
}

int ksnprintf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = kvsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return r;
}

/* Console output: formatted here, handed to kprintf_sink. A line longer
 * than the stack buffer is formatted again into one from the heap, or cut if
 * there is none. */
int kprintf(const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int r = kvsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	char *p = small;
	if (r >= (int)sizeof small) {
		char *big = malloc((size_t)r + 1);
		if (big) {
			va_start(ap, fmt);
			kvsnprintf(big, (size_t)r + 1, fmt, ap);
			va_end(ap);
			p = big;
		}
	}
	kprintf_sink(p);
	if (p != small)
		free(p);
	return r;
}
