# Never finishes.
read a b
while :; do :; done
