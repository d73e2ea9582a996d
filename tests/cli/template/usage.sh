# --help on stdout with exit 0; usage errors exit 2.
ft-template --help | head -n 3; echo "status $?"
ft-template < /dev/null; echo "status $?"
ft-template -c chatml -t x.jinja < /dev/null; echo "status $?"
ft-template -c nosuch < /dev/null; echo "status $?"
ft-template -c chatml --mode sideways < /dev/null; echo "status $?"
ft-template -c chatml --bogus < /dev/null; echo "status $?"
ft-template -c chatml -j 0 < /dev/null; echo "status $?"
ft-template -c chatml -o < /dev/null; echo "status $?"
