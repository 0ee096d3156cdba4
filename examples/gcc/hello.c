#include <stdio.h>

int main(void)
{
	printf("hello from a reproducible gcc build\n");
	return 0;
}
