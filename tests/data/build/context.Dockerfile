FROM test/busybox:1
COPY . /ctx/
ADD pkg.tgz /unpacked/
ADD notar.txt.gz /raw/
COPY *.txt /t/
COPY pipe /pipe
