// The header only declares libFuzzer's driver; this file gives the target a source.
#include "CFuzzerDriver.h"
