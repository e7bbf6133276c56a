#include "util/error.h"
#include "util/hex.h"
#include "util/unit.h"

int main(void)
{
    uint8_t buf[4];
    char text[9];

    CHECK(sts_hex_decode(buf, sizeof buf, "00fFa1", 6) == 3);
    CHECK(buf[0] == 0x00 && buf[1] == 0xff && buf[2] == 0xa1);
    sts_hex_encode(text, buf, 3);
    CHECK(strcmp(text, "00ffa1") == 0);
    CHECK(sts_hex_decode(buf, sizeof buf, "abc", 3) == STS_ERR_INVALID);
    CHECK(sts_hex_decode(buf, sizeof buf, "zz", 2) == STS_ERR_INVALID);
    CHECK(sts_hex_decode(buf, sizeof buf, "0011223344", 10) == STS_ERR_TOO_BIG);
    CHECK(sts_strerror(STS_ERR_AUTH)[0] != '\0');
    return unit_done();
}
