// Fill each ROI of a set into its own slice of an 8-bit stack (255 inside) and list
// "name<TAB>group" per ROI: how ImageJ reads nuclei, ignored areas and regions we wrote.
// Arguments: "ROISET|OUT.tif|INFO.txt|WIDTH|HEIGHT"
parts = split(getArgument(), "|");
setBatchMode(true);
roiManager("reset");
roiManager("Open", parts[0]);
n = roiManager("count");
newImage("masks", "8-bit black", parseInt(parts[3]), parseInt(parts[4]), n);
info = "";
for (i = 0; i < n; i++) {
    setSlice(i + 1);
    roiManager("select", i);
    setColor(255);
    fill();
    info = info + Roi.getName + "\t" + Roi.getGroup + "\n";
}
run("Select None");
saveAs("Tiff", parts[1]);
File.saveString(info, parts[2]);
