#include "util/lines.h"
#include "util/unit.h"

#define TEXT(s) s, sizeof s - 1

/* Every line of text, each as "[line]", in out. */
static void split(const char *text, size_t len, char *out)
{
    const char *line;
    size_t pos = 0, n;

    out[0] = '\0';
    while (sts_next_line(text, len, &pos, &line, &n)) {
        strcat(out, "[");
        strncat(out, line, n);
        strcat(out, "]");
    }
}

int main(void)
{
    static const char nul_inside[] = { 'a', '\0', 'b', '\n', 'c' };
    char out[128];

    split("", 0, out);
    CHECK(strcmp(out, "") == 0);
    split(TEXT("one"), out);
    CHECK(strcmp(out, "[one]") == 0);
    split(TEXT("one\n"), out);
    CHECK(strcmp(out, "[one]") == 0); /* no empty line after the last "\n" */
    split(TEXT("one\n\ntwo\r\n\r\nthree\r"), out);
    CHECK(strcmp(out, "[one][][two][][three]") == 0);
    split(TEXT("a\r\r\nb\n\n"), out); /* only one "\r" belongs to the end of line */
    CHECK(strcmp(out, "[a\r][b][]") == 0);
    split("one\ntwo", 5, out); /* len ends the text, whatever follows */
    CHECK(strcmp(out, "[one][t]") == 0);

    {
        const char *line;
        size_t pos = 0, n;
        CHECK(sts_next_line(nul_inside, sizeof nul_inside, &pos, &line, &n) == 1);
        CHECK(line == nul_inside && n == 3 && pos == 4);
        CHECK(sts_next_line(nul_inside, sizeof nul_inside, &pos, &line, &n) == 1);
        CHECK(line == nul_inside + 4 && n == 1 && pos == 6);
        CHECK(sts_next_line(nul_inside, sizeof nul_inside, &pos, &line, &n) == 0);
    }
    return unit_done();
}
