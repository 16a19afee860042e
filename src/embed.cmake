# embed.cmake - turn a file into a C header holding it as a byte array.
#   cmake -DIN=<file> -DOUT=<header> -DNAME=<identifier> -P src/embed.cmake
# defines: static const unsigned char NAME[] (NUL-terminated) and
#          static const size_t NAME_len (without the NUL).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR len "${digits} / 2")
# 16 bytes a line, then each byte as 0x.., (no {n} repeats in CMake regexes)
string(REPEAT "[0-9a-f]" 32 line_re)
string(REGEX REPLACE "(${line_re})" "\\1\n" hex "${hex}")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}"
  "/* Generated from ${IN} by src/embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "static const unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
  "static const size_t ${NAME}_len = ${len};\n")
